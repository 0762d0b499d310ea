"""Chat over Discord: `/aiops question: …`, signed as Discord signs interactions, reaches chat through the real
`/callbacks/discord` route as an `Asked` — in a DM direct, in a thread started from a card about that card — and
is answered "thinking…" at once; the reply edits that answer through the interaction's token, or once the token
has expired, is posted in the channel the command was run in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from aiops.actions.approvals import Approvals
from aiops.actions.policy import RemediationConfig
from aiops.channels import ChannelError
from aiops.channels.decisions import Decisions
from aiops.channels.discord.api import EMBED_LIMITS, check_message
from aiops.channels.discord.channel import DiscordChannel
from aiops.channels.discord.inbound import ROUTE, DiscordInbound
from aiops.channels.discord.markdown import escape, inline
from aiops.channels.inbound import Deciders
from aiops.chat import Asked, Ran, Reply, Replying
from aiops.templating import build_environment
from aiops.web import callbacks
from tests.channels.announcements import announcement
from tests.channels.discord.conftest import Sleeps
from tests.channels.discord.test_channel import config
from tests.channels.heard import Recorder
from tests.channels.hostile import STRINGS
from tests.fakes.discord import APPLICATION_ID, CHANNEL, DM, LOADING, FakeDiscord, message_problems
from tests.fakes.robots import Clock

COMMAND = Path(__file__).parents[2] / "data" / "discord" / "command.json"
ALICE = "1400000000000000001"
URL = "https://aiops.example.com/incidents/7"


def bot(fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps) -> DiscordChannel:
    return DiscordChannel(config(fake), build_environment("en"), http, clock=clock, sleep=sleeps, now=clock)


class Route:
    """The web app's callback route, leading to the channel's inbound side with `chat` as its listener; what it
    answers is taken by the fake as the interaction's response."""

    def __init__(self, fake: FakeDiscord, client: httpx.AsyncClient) -> None:
        self.fake, self.client = fake, client

    async def post(self, signed: tuple[dict[str, str], bytes]) -> httpx.Response:
        headers, raw = signed
        answered = await self.client.post(ROUTE, content=raw, headers=headers)
        if answered.status_code == 200:
            self.fake.take_response(raw, answered.json())
        return answered


async def route(
    fake: FakeDiscord, channel: DiscordChannel, chat: Recorder | None, clock: Clock
) -> AsyncIterator[Route]:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")  # clicks' path: never reached by commands
    decisions = Decisions(engine, Approvals(engine, RemediationConfig()))
    inbound = DiscordInbound(channel, Deciders(decisions, build_environment("en"), chat), clock=clock)
    web = Starlette(routes=callbacks.routes(lambda _services, _kind: inbound))
    web.state.services = None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://aiops") as client:
        yield Route(fake, client)
    await engine.dispose()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def channel(fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps) -> DiscordChannel:
    return bot(fake, http, clock, sleeps)


@pytest.fixture
async def discord(
    fake: FakeDiscord, channel: DiscordChannel, recorder: Recorder, clock: Clock
) -> AsyncIterator[Route]:
    async for client in route(fake, channel, recorder, clock):
        yield client


def interaction(raw: bytes) -> str:
    return str(json.loads(raw)["id"])


async def test_a_command_in_a_channel_is_a_question_answered_thinking(
    discord: Route, recorder: Recorder, fake: FakeDiscord, clock: Clock
) -> None:
    raw = COMMAND.read_bytes()
    answered = await discord.client.post(ROUTE, content=raw, headers=fake.sign(raw, str(int(clock()))))
    assert (answered.status_code, answered.json()) == (200, {"type": 5})
    body = json.loads(raw)
    assert recorder.heard == [
        Asked(
            kind="discord",
            channel="discord",
            message_id="1700000000000000001",
            user=ALICE,
            text="why is web-1's disk filling? #7",
            direct=False,
            mentioned=True,
            conversation=CHANNEL,
            thread=None,
            reply_to={
                "application_id": APPLICATION_ID,
                "token": body["token"],
                "expires": f"{clock() + 900:.0f}",
                "channel_id": CHANNEL,
            },
        )
    ]


async def test_a_command_in_a_dm_is_direct(discord: Route, recorder: Recorder, fake: FakeDiscord) -> None:
    answered = await discord.post(fake.command("silence this for 2 hours", ALICE, in_guild=False))
    assert answered.json() == {"type": 5}
    [asked] = recorder.heard
    assert (asked.direct, asked.mentioned, asked.user, asked.conversation, asked.thread) == (
        True,
        True,
        ALICE,
        DM,
        None,
    )


async def test_a_command_in_a_cards_thread_is_about_the_card_and_answered_there(
    discord: Route, recorder: Recorder, fake: FakeDiscord, channel: DiscordChannel
) -> None:
    handle = await channel.send(channel.render(announcement("resolved")))
    assert handle is not None
    signed = fake.command("why did it fire?", ALICE, channel_id=fake.thread(handle))
    await discord.post(signed)
    [asked] = recorder.heard
    assert asked.thread == handle and asked.conversation == handle
    body = channel.render_reply(
        Reply(lines=["It fired on disk usage over 90%."], incident_id=7, incident_url=URL)
    )
    await channel.reply(asked.reply_to, body)
    shown = fake.answered(interaction(signed[1]))
    assert shown is not None and shown["channel_id"] == handle
    assert shown["embeds"] == json.loads(body)["embeds"] and "flags" not in fake.record.edits[-1][1]


async def test_pings_and_other_interactions_are_not_handed_over(
    discord: Route, recorder: Recorder, fake: FakeDiscord, clock: Clock
) -> None:
    headers, raw = fake.ping()
    assert (await discord.client.post(ROUTE, content=raw, headers=headers)).json() == {"type": 1}
    modal = json.dumps(
        {"id": "1", "application_id": APPLICATION_ID, "type": 5, "token": "t", "data": {}}
    ).encode()
    refused = await discord.client.post(ROUTE, content=modal, headers=fake.sign(modal, str(int(clock()))))
    assert refused.status_code == 400 and recorder.heard == []


async def test_a_forged_or_broken_command_is_refused_naming_what_is_wrong(
    discord: Route, recorder: Recorder, fake: FakeDiscord, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    headers, raw = fake.command("approve 12", ALICE)
    forged = await discord.client.post(
        ROUTE, content=raw.replace(b"approve 12", b"approve 13"), headers=headers
    )
    other = await discord.post(fake.command("hi", ALICE, name="deploy"))
    body: dict[str, Any] = json.loads(fake.command("hi", ALICE)[1])
    del body["member"]
    nameless = json.dumps(body).encode()
    broken = await discord.client.post(
        ROUTE, content=nameless, headers=fake.sign(nameless, str(int(clock())))
    )
    body["member"] = "not an object"
    odd = json.dumps(body).encode()
    worse = await discord.client.post(ROUTE, content=odd, headers=fake.sign(odd, str(int(clock()))))
    assert forged.status_code == 401
    assert other.status_code == 400 and "data.name" in other.text
    assert broken.status_code == 400 and "member.user.id or user.id" in broken.text
    assert worse.status_code == 400 and "member" in worse.text
    assert "refused a command" in caplog.text and "Traceback" not in caplog.text
    assert recorder.heard == []


async def test_with_chat_off_the_asker_alone_is_told(
    fake: FakeDiscord, channel: DiscordChannel, clock: Clock
) -> None:
    async for discord in route(fake, channel, None, clock):
        answered = await discord.post(fake.command("why?", ALICE))
    answer = answered.json()
    assert answer["type"] == 4 and answer["data"]["flags"] == 64
    assert "Chat with aiops is off" in answer["data"]["content"]


async def test_an_empty_question_is_answered_at_once(
    discord: Route, recorder: Recorder, fake: FakeDiscord
) -> None:
    answered = await discord.post(fake.command("   ", ALICE))
    assert answered.json()["type"] == 4 and "Ask a question" in answered.json()["data"]["content"]
    assert [a.text for a in recorder.heard] == [""]


async def test_a_reply_edits_the_thinking_answer_and_after_15_minutes_is_posted(
    discord: Route, recorder: Recorder, fake: FakeDiscord, channel: DiscordChannel, clock: Clock
) -> None:
    assert isinstance(channel, Replying)
    first, second = fake.command("why?", ALICE), fake.command("and now?", ALICE)
    await discord.post(first)
    await discord.post(second)
    body = channel.render_reply(
        Reply(lines=["Nginx logs."], ran=(Ran("promql", "up", "1"),), incident_id=7, to_user=ALICE)
    )
    await channel.reply(recorder.heard[0].reply_to, body)
    answer = fake.answered(interaction(first[1]))
    assert answer is not None and answer["content"] == f"<@{ALICE}>"
    assert answer["allowed_mentions"] == {"parse": [], "users": [ALICE]}
    assert answer["embeds"][0]["fields"] == [{"name": "Ran promql", "value": "up\n→ 1"}]
    clock.advance(15 * 60)
    await channel.reply(recorder.heard[1].reply_to, body)
    posted = list(fake.record.messages.values())[-1]
    assert posted["channel_id"] == CHANNEL and posted["embeds"] == answer["embeds"]
    thinking = fake.answered(interaction(second[1]))
    assert thinking is not None and thinking["flags"] == LOADING  # past its token, it cannot be edited


async def test_an_unknown_token_falls_back_to_the_channel(
    fake: FakeDiscord, channel: DiscordChannel, clock: Clock
) -> None:
    reply_to = {"application_id": APPLICATION_ID, "token": "gone", "expires": f"{clock() + 600:.0f}"}
    body = channel.render_reply(Reply(lines=["ok"]))
    await channel.reply({**reply_to, "channel_id": CHANNEL}, body)
    assert fake.requests[-2][0] == "PATCH" and fake.requests[-1] == (
        "POST",
        f"/api/v10/channels/{CHANNEL}/messages",
    )
    with pytest.raises(ChannelError) as nowhere:
        await channel.reply(reply_to, body)
    assert not nowhere.value.retryable and "channel_id" in str(nowhere.value)


async def test_rate_limits_and_refusals_say_whether_to_retry(
    fake: FakeDiscord, channel: DiscordChannel, clock: Clock
) -> None:
    body = channel.render_reply(Reply(lines=["ok"]))
    stale = {"token": "t", "expires": "0", "channel_id": CHANNEL}
    fake.limit_globally(60)
    with pytest.raises(ChannelError) as limited:
        await channel.reply(stale, body)
    clock.advance(61)
    fake.forbidden.add(CHANNEL)
    with pytest.raises(ChannelError) as forbidden:
        await channel.reply(stale, body)
    assert limited.value.retryable and limited.value.retry_after is not None
    assert not forbidden.value.retryable and "50013" in str(forbidden.value)


async def test_a_huge_reply_keeps_within_discords_limits(fake: FakeDiscord, channel: DiscordChannel) -> None:
    ran = tuple(Ran("logql", '{app="web"} |= "disk"' * 30, "磁盘" * 400) for _ in range(40))
    body = json.loads(channel.render_reply(Reply(lines=["磁盘已满。" * 2000], ran=ran, incident_id=7)))
    check_message(body)
    assert message_problems(body) == []
    [embed] = body["embeds"]
    assert len(embed["description"]) <= EMBED_LIMITS["description"] and embed["description"].endswith("…")
    assert 0 < len(embed["fields"]) < 25
    assert embed["footer"]["text"] == f"{40 - len(embed['fields'])} more queries not shown"
    await channel.send(json.dumps(body))


@pytest.mark.parametrize("hostile", list(STRINGS.values()), ids=list(STRINGS))
def test_hostile_text_in_a_reply_is_escaped_as_the_cards_escape_it(
    channel: DiscordChannel, hostile: str
) -> None:
    body = json.loads(channel.render_reply(Reply(lines=[hostile], ran=(Ran(hostile, hostile, hostile),))))
    [embed] = body["embeds"]
    assert escape(hostile).strip() in embed["description"]
    assert inline(hostile) in embed["fields"][0]["value"] and inline(hostile) in embed["fields"][0]["name"]
    assert body["allowed_mentions"] == {"parse": [], "users": []} and body["content"] == ""
    if escape(hostile) != hostile:
        assert hostile not in json.dumps(body, ensure_ascii=False)
