"""The Discord REST client against the fake: messages with Approve/Reject buttons, edits, interaction responses
and the deferred edit, limits checked before sending, rate limits waited out (bucket headers, 429 retry_after, the
global limit), and refusals read as retry or not."""

from __future__ import annotations

import httpx
import pytest

from aiops.channels.discord import interactions
from aiops.channels.discord.api import (
    LINK,
    DiscordError,
    approval_row,
    button,
    check_message,
    custom_id,
    message,
    parse_custom_id,
    row,
)
from tests.channels.discord.conftest import Sleeps, rest
from tests.fakes.discord import BOT_TOKEN, CHANNEL, FakeDiscord
from tests.fakes.robots import Clock
from tests.support.binaries import free_port
from tests.support.logs import aiops_logging


async def test_a_message_with_buttons_is_posted_then_edited(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    client = rest(fake, http, clock, sleeps)
    message_id = await client.create_message(
        CHANNEL, message("**HostOutOfDiskSpace**", components=[approval_row(42)])
    )
    posted = fake.record.messages[message_id]
    ids = [b["custom_id"] for b in posted["components"][0]["components"]]
    assert ids == ["aiops:approve:42", "aiops:reject:42"]
    assert [parse_custom_id(i) for i in ids] == [("approve", 42), ("reject", 42)]
    assert posted["allowed_mentions"] == {"parse": [], "users": []}
    await client.edit_message(CHANNEL, message_id, message("Approved by <@4001>", mention_users=["4001"]))
    assert fake.record.messages[message_id]["content"] == "Approved by <@4001>"
    assert fake.record.messages[message_id]["allowed_mentions"] == {"parse": [], "users": ["4001"]}


async def test_a_press_is_deferred_then_its_message_edited_through_the_interaction(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    client = rest(fake, http, clock, sleeps)
    message_id = await client.create_message(CHANNEL, message("card", components=[approval_row(42)]))
    headers, raw = fake.press(custom_id("approve", 42), "4001", message_id)
    pressed = interactions.Verifier(fake.public_key, clock=clock).verify(headers, raw)
    await client.respond(pressed.id, pressed.token, interactions.deferred_update())
    clock.advance(600)  # the work takes ten minutes: the token still edits
    await client.edit_original(pressed.token, message("Approved by <@4001>: done", components=[]))
    assert fake.record.responses == [{"type": 6}]
    assert fake.record.messages[message_id]["content"] == "Approved by <@4001>: done"


async def test_a_press_answered_late_or_twice_is_refused_and_not_retried(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    client = rest(fake, http, clock, sleeps)
    message_id = await client.create_message(CHANNEL, message("card", components=[approval_row(42)]))
    _, raw = fake.press(custom_id("approve", 42), "4001", message_id)
    pressed = interactions.parse(raw)
    await client.respond(pressed.id, pressed.token, interactions.update_message(message("Approved")))
    with pytest.raises(DiscordError, match="answered already") as twice:
        await client.respond(pressed.id, pressed.token, interactions.deferred_update())
    assert (twice.value.code, twice.value.retryable) == (40060, False)
    _, raw = fake.press(custom_id("reject", 42), "4001", message_id)
    late = interactions.parse(raw)
    clock.advance(3.5)
    with pytest.raises(DiscordError, match="3 s") as refused:
        await client.respond(late.id, late.token, interactions.deferred_update())
    assert (refused.value.code, refused.value.retryable) == (10062, False)
    assert late.token not in str(refused.value)


async def test_an_empty_bucket_waits_for_its_reset_instead_of_drawing_a_429(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    client = rest(fake, http, clock, sleeps)
    for n in range(12):
        await client.create_message(CHANNEL, message(f"incident {n}"))
    assert len(fake.record.messages) == 12 and fake.invalid_requests == 0
    assert len(sleeps.taken) == 2 and all(0 < s <= 5 for s in sleeps.taken)


async def test_a_429_is_waited_out_and_the_request_made_again(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    """Another process of the same bot used the bucket up: this client learns it from the 429 alone."""
    other = rest(fake, http, clock, sleeps)
    for n in range(5):
        await other.create_message(CHANNEL, message(f"other {n}"))
    await rest(fake, http, clock, sleeps).create_message(CHANNEL, message("mine"))
    assert fake.invalid_requests == 1 and sleeps.taken == [pytest.approx(5.0)]
    assert [m["content"] for m in fake.record.messages.values()][-1] == "mine"


async def test_a_global_limit_holds_every_route(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    client = rest(fake, http, clock, sleeps)
    message_id = await client.create_message(CHANNEL, message("card"))
    fake.limit_globally(2.0)
    await client.edit_message(CHANNEL, message_id, message("edited"))
    await client.create_message(CHANNEL, message("next"))
    assert sleeps.taken == [pytest.approx(2.0)] and fake.invalid_requests == 1


async def test_a_wait_longer_than_allowed_is_left_to_the_outbox(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    client = rest(fake, http, clock, sleeps, max_wait=1.0)
    fake.limit_globally(30.0)
    with pytest.raises(DiscordError) as limited:
        await client.create_message(CHANNEL, message("card"))
    assert limited.value.retryable and limited.value.retry_after == pytest.approx(30.0)
    with pytest.raises(DiscordError):  # known now: not even asked
        await client.create_message(CHANNEL, message("card"))
    assert fake.invalid_requests == 1 and sleeps.taken == []


@pytest.mark.parametrize(
    "body",
    [
        {"content": "x" * 2001},
        {"content": "😀" * 1001},  # 2,002 UTF-16 units
        {"embeds": [{"description": "x" * 4097}]},
        {"embeds": [{"description": "x" * 3000}, {"description": "x" * 3001}]},  # 6,001 in all
        {"embeds": [{"title": "t"}] * 11},
        {"components": [approval_row(n) for n in range(6)]},
        {"components": [row(*[button(str(n), style=1, custom=f"b{n}") for n in range(6)])]},
        {"components": [row(button("A", style=1, custom="x" * 101))]},
        {"components": [row(button("A", style=1, custom="same"), button("B", style=2, custom="same"))]},
        {"components": [row(button("L" * 81, style=1, custom="a"))]},
    ],
)
def test_messages_over_discords_limits_are_refused_before_sending(body: dict[str, object]) -> None:
    with pytest.raises(DiscordError) as refused:
        check_message(body)
    assert not refused.value.retryable


async def test_the_fake_refuses_what_the_client_would_not_send(
    fake: FakeDiscord, http: httpx.AsyncClient
) -> None:
    headers = {"Authorization": f"Bot {BOT_TOKEN}"}
    answer = await http.post(
        f"{fake.api}/channels/{CHANNEL}/messages", json={"content": "x" * 2001}, headers=headers
    )
    assert (
        answer.status_code == 400 and answer.json()["code"] == 50035 and "content" in answer.json()["errors"]
    )


def test_a_link_button_has_a_url_and_no_custom_id() -> None:
    assert button("Open", style=LINK, url="https://aiops.example.com/i/7") == {
        "type": 2,
        "style": LINK,
        "label": "Open",
        "url": "https://aiops.example.com/i/7",
    }
    with pytest.raises(ValueError):
        button("Open", style=LINK, custom="x")
    assert parse_custom_id("aiops:delete:1") is None and parse_custom_id("other:approve:1") is None


async def test_a_wrong_bot_token_names_the_setting_and_is_not_retried(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    client = rest(fake, http, clock, sleeps, bot_token="not-the-token-Zk3")
    with pytest.raises(DiscordError, match="bot_token") as refused:
        await client.create_message(CHANNEL, message("card"))
    assert (refused.value.status, refused.value.retryable) == (401, False)
    assert "not-the-token-Zk3" not in str(refused.value) and fake.invalid_requests == 1


async def test_missing_permissions_and_unknown_channels_say_what_to_fix(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    client = rest(fake, http, clock, sleeps)
    fake.forbidden.add(CHANNEL)
    with pytest.raises(DiscordError, match="Send Messages") as forbidden:
        await client.create_message(CHANNEL, message("card"))
    assert (forbidden.value.code, forbidden.value.retryable) == (50013, False)
    with pytest.raises(DiscordError, match="channel_id") as unknown:
        await client.create_message("1999999999999999999", message("card"))
    assert unknown.value.code == 10003


async def test_an_unreachable_discord_is_retryable(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    client = rest(fake, http, clock, sleeps, base_url=f"http://127.0.0.1:{free_port()}/api/v10")
    with pytest.raises(DiscordError) as refused:
        await client.create_message(CHANNEL, message("card"))
    assert refused.value.retryable and BOT_TOKEN not in str(refused.value)


async def test_interaction_tokens_stay_out_of_the_logs(
    fake: FakeDiscord,
    http: httpx.AsyncClient,
    clock: Clock,
    sleeps: Sleeps,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = rest(fake, http, clock, sleeps)
    message_id = await client.create_message(CHANNEL, message("card", components=[approval_row(42)]))
    pressed = interactions.parse(fake.press(custom_id("approve", 42), "4001", message_id)[1])
    with aiops_logging([BOT_TOKEN]):
        await client.respond(pressed.id, pressed.token, interactions.deferred_update())
    logged = capsys.readouterr().err
    assert BOT_TOKEN not in logged and pressed.token not in logged
