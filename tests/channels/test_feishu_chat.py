"""Chat messages to the Feishu app's bot: real-shaped `im.message.receive_v1` events, pushed encrypted and signed to
`POST /callbacks/feishu` and as frames over the long connection (the real lark-oapi client), read into the `Asked`
a recording listener receives; the bot's open_id asked of the fake Open API once."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from aiops.channels.feishu import FeishuChannel, FeishuConfig
from aiops.channels.feishu.inbound import FeishuInbound
from aiops.channels.feishu.messages import FEISHU, asked, message
from aiops.channels.inbound import Deciders
from aiops.chat import Asked, Heard
from aiops.service import Services
from aiops.web import callbacks
from tests.fakes.feishu import SECRET, FakeFeishu, FeishuCallbacks
from tests.fakes.feishu_ws import FakeLongConnection

ENCRYPT_KEY = "fake-encrypt-key-0123456789abcdef"
TOKEN = "fake-verification-token-0123456789"
DATA = Path(__file__).parent.parent / "data" / "feishu"
CARD = "om_card0123456789abcdef"  # the handle `send` returned for an incident's card
MESSAGE = "im.message.receive_v1"


class Recorder:
    """A `Listener` that keeps what it hears, once per message id, as the chat core does."""

    def __init__(self) -> None:
        self.heard: list[Asked] = []

    async def hear(self, asked: Asked) -> Heard:
        if any(seen.message_id == asked.message_id for seen in self.heard):
            return "duplicate"
        self.heard.append(asked)
        return "queued" if asked.direct or asked.mentioned or asked.thread else "ignored"


class Broken:
    """A `Listener` whose store is down."""

    async def hear(self, asked: Asked) -> Heard:
        raise ConnectionError("the database is unreachable")


def config_for(fake: FakeFeishu, **settings: Any) -> FeishuConfig:
    settings = {"app_secret": SECRET, **settings}
    return FeishuConfig(
        app_id=fake.app_id,
        chat_id=fake.chat_id,
        domain=fake.url,
        encrypt_key=ENCRYPT_KEY,
        verification_token=TOKEN,
        **settings,
    )


@asynccontextmanager
async def route(
    services: Services, fake: FakeFeishu, listener: Any, http: httpx.AsyncClient, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """`POST /callbacks/feishu` of a Feishu app whose chat messages go to `listener` (None: chat is off)."""
    config = config_for(fake, **settings)
    channel = FeishuChannel(config, services.templates, http)
    deciders = Deciders(services.decisions, services.templates, chat=listener)
    inbound = FeishuInbound(config, deciders, channel.bot_open_id)
    app = Starlette(routes=callbacks.routes(lambda *_: inbound))
    app.state.services = services
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://aiops") as client:
        yield client


async def post(client: httpx.AsyncClient, payload: dict[str, Any], **request: Any) -> httpx.Response:
    sender = FeishuCallbacks(TOKEN, ENCRYPT_KEY, request.pop("app_id", "cli_fake"))
    body, headers = sender.request(payload, **request)
    return await client.post("/callbacks/feishu", content=body, headers=headers)


def event(fake: FakeFeishu, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return FeishuCallbacks(TOKEN).event(MESSAGE, fake.says(*args, **kwargs))


async def test_a_group_message_mentioning_the_bot_is_handed_over_without_the_mention(
    app_for: Callable[..., Any], feishu: FakeFeishu, http: httpx.AsyncClient
) -> None:
    recorder = Recorder()
    mentions = {"@_user_1": feishu.bot, "@_user_2": ("ou_bob", "Bob")}
    pushed = event(feishu, "ou_alice", "@_user_1 why is web-1's disk filling? cc @_user_2", mentions=mentions)
    async with app_for() as (_, services), route(services, feishu, recorder, http) as client:
        answered = await post(client, pushed)
        again = await post(client, pushed)  # Feishu delivers at least once
    assert answered.status_code == 200 and answered.json() == {} and again.status_code == 200
    message_id = pushed["event"]["message"]["message_id"]
    assert recorder.heard == [
        Asked(
            kind=FEISHU,
            channel="feishu",
            message_id=message_id,
            user="ou_alice",
            text="why is web-1's disk filling? cc @Bob",
            direct=False,
            mentioned=True,
            conversation=feishu.chat_id,
            thread=None,
            reply_to={"message_id": message_id, "in_thread": "true"},
        )
    ]
    assert feishu.bot_info_requests == 1


async def test_group_direct_and_thread_messages_are_told_apart(
    app_for: Callable[..., Any], feishu: FakeFeishu, http: httpx.AsyncClient
) -> None:
    recorder = Recorder()
    others = event(feishu, "ou_alice", "@_user_1 lunch?", mentions={"@_user_1": ("ou_bob", "Bob")})
    plain = event(feishu, "ou_alice", "anyone seen this?")
    direct = event(feishu, "ou_alice", "  approve 12  ", direct=True)
    threaded = event(feishu, "ou_alice", "silence this for 2 hours", root_id=CARD)
    async with app_for() as (_, services), route(services, feishu, recorder, http) as client:
        for pushed in (others, plain, direct, threaded):
            assert (await post(client, pushed)).status_code == 200
    to_bob, unmentioned, to_aiops, in_thread = recorder.heard
    assert (to_bob.mentioned, to_bob.text, to_bob.direct) == (False, "@Bob lunch?", False)
    assert (unmentioned.mentioned, unmentioned.thread) == (False, None)
    assert (to_aiops.direct, to_aiops.text, to_aiops.reply_to["in_thread"]) == (True, "approve 12", "false")
    assert to_aiops.conversation == f"oc_p2p{'ou_alice'}"
    assert (in_thread.thread, in_thread.mentioned, in_thread.direct) == (CARD, False, False)
    assert feishu.bot_info_requests == 1, "asked once, for the first message that mentions anyone"


async def test_the_configured_bot_open_id_is_used_without_asking_feishu(
    app_for: Callable[..., Any], feishu: FakeFeishu, http: httpx.AsyncClient
) -> None:
    recorder = Recorder()
    pushed = event(feishu, "ou_alice", "@_user_1 status?", mentions={"@_user_1": ("ou_configured", "aiops")})
    configured = {"bot_open_id": "ou_configured"}
    async with app_for() as (_, services), route(services, feishu, recorder, http, **configured) as client:
        await post(client, pushed)
    [heard] = recorder.heard
    assert heard.mentioned and heard.text == "status?" and feishu.bot_info_requests == 0


async def test_a_non_text_message_is_acknowledged_and_not_handed_over(
    app_for: Callable[..., Any], feishu: FakeFeishu, http: httpx.AsyncClient
) -> None:
    recorder = Recorder()
    image = json.loads((DATA / "message_image.json").read_text())
    sticker = event(feishu, "ou_alice", "", message_type="sticker")
    from_a_bot = event(feishu, "ou_other_bot", "hello")
    from_a_bot["event"]["sender"]["sender_type"] = "app"
    async with app_for() as (_, services), route(services, feishu, recorder, http) as client:
        answers = [await post(client, pushed) for pushed in (image, sticker, from_a_bot)]
    assert [a.status_code for a in answers] == [200, 200, 200] and recorder.heard == []


@pytest.mark.parametrize(
    ("field", "broken"),
    [
        ("event.message.content", lambda e: e["event"]["message"].update(content="not json")),
        ("event.message.message_id", lambda e: e["event"]["message"].pop("message_id")),
        ("event.sender.sender_id", lambda e: e["event"]["sender"].pop("sender_id")),
        ("event.message.chat_id", lambda e: e["event"]["message"].update(chat_id="oc_\x00nul")),
        ("event.message.mentions[0].key", lambda e: e["event"]["message"].update(mentions=[{"name": "x"}])),
        ("event is missing", lambda e: e.pop("event")),
    ],
)
async def test_a_malformed_message_is_acknowledged_with_a_log_line_naming_the_field(
    app_for: Callable[..., Any],
    feishu: FakeFeishu,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    field: str,
    broken: Callable[[dict[str, Any]], Any],
) -> None:
    recorder = Recorder()
    pushed = event(feishu, "ou_alice", "why?", direct=True)
    broken(pushed)
    async with app_for() as (_, services), route(services, feishu, recorder, http) as client:
        answered = await post(client, pushed)
    assert answered.status_code == 200 and recorder.heard == []
    assert field in caplog.text and "Traceback" not in caplog.text


async def test_an_unverified_message_is_refused_like_a_click(
    app_for: Callable[..., Any], feishu: FakeFeishu, http: httpx.AsyncClient
) -> None:
    recorder = Recorder()
    pushed = event(feishu, "ou_alice", "approve 12", direct=True)
    async with app_for() as (_, services), route(services, feishu, recorder, http) as client:
        forged = await post(client, pushed, sign_with="not-the-encrypt-key-0123456789")
        unsigned = await post(client, pushed, sign=False)
        wrong_token = await post(client, FeishuCallbacks("not-the-token").event(MESSAGE, pushed["event"]))
    assert [forged.status_code, unsigned.status_code, wrong_token.status_code] == [401, 401, 401]
    assert recorder.heard == []


async def test_with_chat_off_a_message_is_acknowledged_and_left(
    app_for: Callable[..., Any], feishu: FakeFeishu, http: httpx.AsyncClient
) -> None:
    pushed = event(feishu, "ou_alice", "@_user_1 why?", mentions={"@_user_1": feishu.bot})
    async with app_for() as (_, services), route(services, feishu, None, http) as client:
        answered = await post(client, pushed)
    assert answered.status_code == 200 and answered.json() == {}
    assert feishu.bot_info_requests == 0


async def test_a_message_that_cannot_be_recorded_is_refused_so_feishu_delivers_it_again(
    app_for: Callable[..., Any], feishu: FakeFeishu, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    mentioning = event(feishu, "ou_alice", "@_user_1 why?", mentions={"@_user_1": feishu.bot})
    direct = event(feishu, "ou_alice", "why?", direct=True)
    async with app_for() as (_, services):
        async with route(services, feishu, Broken(), http) as client:
            store_down = await post(client, direct)
        # A wrong app secret: no tenant token, so bot/v3/info cannot be asked.
        async with route(services, feishu, Recorder(), http, app_secret="x" * 20) as client:
            unknown_bot = await post(client, mentioning)
    assert store_down.status_code == 503 and unknown_bot.status_code == 503
    assert "channels.feishu.bot_open_id" in caplog.text


def test_the_fixture_reads_as_a_question_in_a_cards_thread() -> None:
    payload = json.loads((DATA / "message_group_mention.json").read_text())
    found = message(payload)
    assert found is not None
    heard = asked(found, "oncall", bot_open_id="ou_bot")
    assert heard.text == "why is web-1's disk filling? cc @Bob"
    assert (heard.mentioned, heard.direct, heard.thread) == (True, False, CARD)
    assert heard.reply_to == {"message_id": "om_5ce6d572455d361153b7cb51da133945", "in_thread": "true"}
    assert asked(found, "oncall", bot_open_id=None).mentioned is False


def test_mention_keys_are_replaced_whole() -> None:
    payload = json.loads((DATA / "message_group_mention.json").read_text())
    content = {"text": "@_user_1 @_user_10 hi"}
    payload["event"]["message"]["content"] = json.dumps(content)
    payload["event"]["message"]["mentions"].append(
        {"key": "@_user_10", "id": {"open_id": "ou_ten"}, "name": "Ten"}
    )
    found = message(payload)
    assert found is not None and asked(found, "feishu", "ou_bot").text == "@Ten hi"


# The long connection: the same events as frames, through the real lark-oapi client.


@asynccontextmanager
async def connected(
    services: Services, fake: FakeFeishu, listener: Any, http: httpx.AsyncClient
) -> AsyncIterator[FakeLongConnection]:
    config = FeishuConfig(
        app_id=fake.app_id,
        app_secret=SECRET,
        chat_id=fake.chat_id,
        domain=fake.url,
        callbacks="long_connection",
    )
    channel = FeishuChannel(config, services.templates, http)
    inbound = FeishuInbound(
        config, Deciders(services.decisions, services.templates, listener), channel.bot_open_id
    )
    inbound.start()
    try:
        assert fake.gateway is not None
        await asyncio.to_thread(fake.gateway.wait_connected)
        yield fake.gateway
    finally:
        await inbound.stop()


async def test_messages_over_the_long_connection_are_handed_over_and_acknowledged(
    app_for: Callable[..., Any], feishu: FakeFeishu, http: httpx.AsyncClient
) -> None:
    recorder = Recorder()
    sender = FeishuCallbacks("unused-in-long-connection-mode")
    mentioning = sender.event(
        MESSAGE, feishu.says("ou_alice", "@_user_1 why?", mentions={"@_user_1": feishu.bot})
    )
    threaded = sender.event(MESSAGE, feishu.says("ou_alice", "ack", root_id=CARD))
    image = sender.event(MESSAGE, feishu.says("ou_alice", "", message_type="image"))
    async with app_for() as (_, services), connected(services, feishu, recorder, http) as gateway:
        answers = [
            await asyncio.to_thread(gateway.send, pushed, parts=2) for pushed in (mentioning, threaded, image)
        ]
    assert [a.code for a in answers] == [200, 200, 200]
    first, second = recorder.heard
    assert (first.text, first.mentioned, first.thread) == ("why?", True, None)
    assert (second.thread, second.user, second.conversation) == (CARD, "ou_alice", feishu.chat_id)


async def test_over_the_long_connection_an_unrecorded_message_is_answered_with_an_error(
    app_for: Callable[..., Any], feishu: FakeFeishu, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    pushed = FeishuCallbacks("unused").event(MESSAGE, feishu.says("ou_alice", "why?", direct=True))
    async with app_for() as (_, services):
        async with connected(services, feishu, Broken(), http) as gateway:
            broken = await asyncio.to_thread(gateway.send, pushed)
        async with connected(services, feishu, None, http) as gateway:
            chat_off = await asyncio.to_thread(gateway.send, pushed)
    assert broken.code == 500  # Feishu delivers it again
    assert chat_off.code == 200
