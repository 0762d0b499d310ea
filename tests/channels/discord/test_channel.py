"""The Discord channel against the fake Discord: messages with buttons, edits, rate limits and refusals, and the
interactions a press sends (signed by the fake's own key)."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from aiops.channels import Announcement, ChannelError
from aiops.channels.decisions import HASH_PREFIX, Button
from aiops.channels.discord.api import check_message
from aiops.channels.discord.channel import DiscordChannel, DiscordConfig
from aiops.channels.discord.clicks import DiscordClicks
from aiops.channels.discord.interactions import Verifier
from aiops.store.actions import argv_hash
from aiops.templating import build_environment
from tests.channels.announcements import APPROVAL, announcement, digest
from tests.channels.discord.conftest import Sleeps
from tests.channels.hostile import CASES, IDS
from tests.fakes.discord import APPLICATION_ID, BOT_TOKEN, CHANNEL, FakeDiscord
from tests.fakes.robots import Clock

PURPOSES = ("opened", "updated", "resolved", "action")
PAUSE = "https://aiops.example.com/remediation"
APPROVER = "1400000000000000001"


def config(fake: FakeDiscord, **changes: Any) -> DiscordConfig:
    settings: dict[str, Any] = {
        "application_id": APPLICATION_ID,
        "public_key": fake.public_key,
        "bot_token": BOT_TOKEN,
        "channel_id": CHANNEL,
        "api": fake.api,
        "timeout": 5.0,
        **changes,
    }
    return DiscordConfig.model_validate(settings)


def bot(
    fake: FakeDiscord,
    http: httpx.AsyncClient,
    clock: Clock,
    sleeps: Sleeps,
    language: str = "zh-CN",
    **changes: Any,
) -> DiscordChannel:
    return DiscordChannel(
        config(fake, **changes), build_environment(language), http, clock=clock, sleep=sleeps
    )


def hashed(a: Announcement, **changes: Any) -> Announcement:
    proposals = tuple(dataclasses.replace(p, argv_hash=argv_hash(p.host, p.argv)) for p in a.proposals)
    return dataclasses.replace(a, proposals=proposals, **changes)


def custom_ids(body: dict[str, Any]) -> list[str]:
    return [b["custom_id"] for r in body["components"] for b in r["components"] if "custom_id" in b]


def clicks(channel: DiscordChannel, clock: Clock) -> DiscordClicks:
    return DiscordClicks(channel, Verifier(channel.config.public_key, clock=clock))


@pytest.mark.parametrize("language", ("zh-CN", "en"))
@pytest.mark.parametrize("purpose", PURPOSES)
async def test_each_announcement_is_a_message_discord_accepts_and_edits(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps, purpose: str, language: str
) -> None:
    channel = bot(fake, http, clock, sleeps, language)
    for a in (announcement(purpose), announcement(purpose, hostile=True, huge=True)):  # type: ignore[arg-type]
        body = channel.render(hashed(a))
        check_message(json.loads(body))  # within every limit: content, embeds, rows, custom_ids
        handle = await channel.send(body)
        assert handle in fake.record.messages
        await channel.update(handle, channel.render(announcement("resolved")))
        assert fake.record.edits[-1][0] == handle
    embed = next(iter(fake.record.messages.values()))["embeds"][0]
    assert embed["url"] == "https://aiops.example.com/incidents/7"


def test_30_kb_of_evidence_is_cut_to_the_embed_and_says_so(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    body = json.loads(
        bot(fake, http, clock, sleeps, "en").render(hashed(announcement("opened", hostile=True, huge=True)))
    )
    description = body["embeds"][0]["description"]
    assert len(description.encode("utf-16-le")) // 2 <= 4096
    assert "Shortened to fit" in description


def test_the_texts_are_in_the_configured_language(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    zh = bot(fake, http, clock, sleeps, "zh-CN").render(hashed(announcement("opened")))
    en = bot(fake, http, clock, sleeps, "en").render(hashed(announcement("opened")))
    assert "Approve #11" in en and re.search("[\u4e00-\u9fff]", zh) and not re.search("[\u4e00-\u9fff]", en)


def test_buttons_name_the_proposal_and_its_command_and_pause_the_incident(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    channel = bot(fake, http, clock, sleeps, "en")
    a = hashed(announcement("opened"))
    digest_11 = a.proposals[0].argv_hash[:HASH_PREFIX]
    body = json.loads(channel.render(a))
    assert custom_ids(body)[:2] == [f"aiops:approve:11:{digest_11}", f"aiops:reject:11:{digest_11}"]
    assert len(custom_ids(body)) == 4  # 11 and 12 pending; 13 refused
    links = [b["url"] for r in body["components"] for b in r["components"] if b["style"] == 5]
    assert links == [f"{APPROVAL}tok-eleven", f"{APPROVAL}tok-twelve"]
    paused = json.loads(channel.render(dataclasses.replace(a, pause_url=PAUSE)))
    assert custom_ids(paused)[-1] == "aiops:pause:7"
    assert Button.parse("aiops:pause:7") == Button("pause", incident_id=7)
    assert Button.parse("aiops:approve:11") is None and Button.parse(f"x:approve:11:{digest_11}") is None


def test_mentions_ping_only_the_on_call_ids(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    a = dataclasses.replace(announcement("resolved"), mentions=(APPROVER, "@everyone", "<@&5001>"))
    body = json.loads(bot(fake, http, clock, sleeps).render(a))
    assert body["content"] == f"<@{APPROVER}>"
    assert body["allowed_mentions"] == {"parse": [], "users": [APPROVER]}


@pytest.mark.parametrize("hostile", CASES, ids=IDS)
def test_hostile_text_opens_no_markup_link_or_mention(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps, hostile: str
) -> None:
    base = hashed(announcement("opened"))
    incident = dataclasses.replace(
        base.incident, title=hostile, labels={**base.incident.labels, "x": hostile}
    )
    body = json.loads(bot(fake, http, clock, sleeps).render(dataclasses.replace(base, incident=incident)))
    check_message(body)
    text = body["embeds"][0]["title"] + body["embeds"][0]["description"]
    assert "[x](https://evil" not in text
    assert not re.search(r"@(everyone|here)", text) and not re.search(r"<@&?\d", text)


async def test_a_digest_fits_one_embed(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    channel = bot(fake, http, clock, sleeps, "en")
    body = channel.render_digest(digest(1000, hostile=True))
    check_message(json.loads(body))
    assert "1000" in json.loads(body)["embeds"][0]["title"]
    await channel.send(body)


async def test_rate_limits_are_waited_out_or_handed_back_with_retry_after(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    channel = bot(fake, http, clock, sleeps)
    body = channel.render(announcement("resolved"))
    for _ in range(8):  # the fake's bucket holds 5 in 5 s: the client waits for its reset
        await channel.send(body)
    assert len(fake.record.messages) == 8 and sleeps.taken
    fake.limit_globally(120)
    with pytest.raises(ChannelError) as raised:
        await channel.send(body)
    assert raised.value.retryable and (raised.value.retry_after or 0) > 10  # for the outbox to come back


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"bot_token": "MTAwMDAw.wrong.token"}, "bot_token"),
        ({"channel_id": "1100000000000000009"}, "channel_id"),
    ],
    ids=["token", "channel"],
)
async def test_refusals_are_final_and_say_what_to_fix(
    fake: FakeDiscord,
    http: httpx.AsyncClient,
    clock: Clock,
    sleeps: Sleeps,
    change: dict[str, str],
    says: str,
) -> None:
    channel = bot(fake, http, clock, sleeps, **change)
    with pytest.raises(ChannelError) as raised:
        await channel.send(channel.render(announcement("resolved")))
    assert not raised.value.retryable and says in str(raised.value)
    assert BOT_TOKEN not in str(raised.value) and "wrong.token" not in str(raised.value)


async def test_a_press_is_deferred_at_once_then_the_message_is_edited(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    channel = bot(fake, http, clock, sleeps, "en")
    handle = await channel.send(channel.render(hashed(announcement("opened"))))
    assert handle is not None
    custom = f"aiops:approve:11:{'b' * HASH_PREFIX}"
    headers, raw = fake.press(custom, APPROVER, handle)
    answer = clicks(channel, clock).answer_interaction(headers, raw)
    assert (answer.status, answer.body) == (200, {"type": 6})
    click = answer.click
    assert click is not None
    press = click.press
    assert (press.kind, press.user, press.choice, press.proposal_id, press.hash_prefix) == (
        "discord",
        APPROVER,
        "approve",
        11,
        "b" * 16,
    )
    assert click.message_id == handle
    # Discord takes the HTTP answer as the interaction's response; the fake learns it through its callback route.
    await channel.rest.respond(click.interaction_id, click.token, answer.body or {})
    await channel.edit_clicked(click.token, channel.render(announcement("resolved")))
    assert fake.record.edits == [(handle, json.loads(channel.render(announcement("resolved"))))]


async def test_a_press_in_a_dm_and_a_pause(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    channel = bot(fake, http, clock, sleeps)
    headers, raw = fake.press("aiops:pause:7", APPROVER, "1300000000000000099", in_guild=False)
    click = clicks(channel, clock).answer_interaction(headers, raw).click
    assert click is not None
    assert (click.press.user, click.press.choice, click.press.incident_id) == (APPROVER, "pause", 7)


async def test_ping_is_answered_pong(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    headers, raw = fake.ping()
    answer = clicks(bot(fake, http, clock, sleeps), clock).answer_interaction(headers, raw)
    assert (answer.status, answer.body, answer.click) == (200, {"type": 1}, None)


async def test_forged_and_stale_presses_are_401_and_change_nothing(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    channel = bot(fake, http, clock, sleeps)
    handler = clicks(channel, clock)
    handle = await channel.send(channel.render(hashed(announcement("opened"))))
    assert handle is not None
    headers, raw = fake.press(f"aiops:approve:11:{'b' * 16}", APPROVER, handle)
    forged = raw.replace(b"aiops:approve", b"aiops:reject_")
    assert handler.answer_interaction(headers, forged).status == 401
    assert handler.answer_interaction({}, raw).status == 401
    assert handler.answer_interaction({**headers, "X-Signature-Ed25519": "00" * 64}, raw).status == 401
    clock.advance(3600)
    stale = handler.answer_interaction(headers, raw)
    assert stale.status == 401 and stale.click is None
    assert fake.record.responses == [] and fake.record.edits == []


def test_a_button_this_service_did_not_make_is_not_a_click(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps
) -> None:
    headers, raw = fake.press("someone-elses-button", APPROVER, "1300000000000000099")
    answer = clicks(bot(fake, http, clock, sleeps), clock).answer_interaction(headers, raw)
    assert answer.status == 400 and answer.click is None


def test_the_config_keeps_the_token_and_checks_the_ids(fake: FakeDiscord) -> None:
    assert BOT_TOKEN not in repr(config(fake))
    with pytest.raises(ValidationError):
        config(fake, public_key="not-hex")
    with pytest.raises(ValidationError, match="without the 'Bot ' prefix"):
        config(fake, bot_token=f"Bot {BOT_TOKEN}")
    with pytest.raises(ValidationError):
        config(fake, channel_id="general")
