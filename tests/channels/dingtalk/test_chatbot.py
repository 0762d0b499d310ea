"""Messages to the app's robot, pushed by the fake gateway to the real dingtalk-stream client, reach chat as an
`Asked` and are acknowledged once chat has them; what is not text, what is malformed, and everything while chat is
off, is acknowledged and not handed over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from aiops.channels.dingtalk import DingTalkChannel
from aiops.channels.dingtalk.stream import DingTalkCallbacks, inbound
from aiops.channels.inbound import Deciders
from aiops.chat import Asked, Heard
from aiops.service import Services
from tests.channels.dingtalk.conftest import config, event
from tests.fakes.dingtalk import CHATBOT_TOPIC, GROUP, SECRET, FakeDingTalk


class Recording:
    """A chat listener that keeps what it hears (or fails, as a store that is down would)."""

    def __init__(self, fails: bool = False) -> None:
        self.heard: list[Asked] = []
        self.fails = fails

    async def hear(self, asked: Asked) -> Heard:
        if self.fails:
            raise RuntimeError("the store is down")
        self.heard.append(asked)
        return "queued"


@asynccontextmanager
async def stream(
    app_for: Callable[..., Any], fake: FakeDingTalk, chat: Recording | None, **changes: Any
) -> AsyncIterator[DingTalkCallbacks]:
    """The channel's Stream connection, opened to the fake gateway, with `chat` as the listener."""
    async with app_for(server={"language": "en"}) as (_, services):
        services_: Services = services
        channel = DingTalkChannel(config(fake, **changes), services_.templates, services_.http)
        callbacks = DingTalkCallbacks(channel, services_.decisions, chat)
        callbacks.start()
        try:
            assert await asyncio.to_thread(fake.connected.wait, 10), "the SDK did not connect"
            yield callbacks
        finally:
            await callbacks.stop()


async def deliver(fake: FakeDingTalk, data: dict[str, Any]) -> dict[str, Any]:
    """Push the message and wait, off the loop, for the client's ack."""
    frame = await asyncio.to_thread(fake.deliver, data)
    ack: dict[str, Any] = await asyncio.to_thread(fake.wait_ack, frame)
    return ack


async def test_a_group_message_that_mentions_the_robot_reaches_chat_and_is_acknowledged(
    app_for: Callable[..., Any], fake: FakeDingTalk
) -> None:
    chat = Recording()
    async with stream(app_for, fake, chat):
        ack = await deliver(fake, event("group_text"))
    [asked] = chat.heard
    assert ack["code"] == 200 and ack["data"] == {"response": "OK"}
    assert (asked.kind, asked.channel, asked.user) == ("dingtalk", "dingtalk", "staff-1")
    assert asked.message_id == "msgLq0BfVxS1pZ7mC2kT9eW4g==" and asked.conversation == GROUP
    assert asked.text == "web-1 的磁盘为什么在涨？", "the leading space DingTalk leaves is stripped"
    assert (asked.direct, asked.mentioned, asked.thread) == (False, True, None)
    assert set(asked.reply_to) == {
        "conversation_type",
        "conversation_id",
        "user",
        "session_webhook",
        "expires_ms",
    }
    assert (
        asked.reply_to["session_webhook"].startswith(fake.url) and asked.reply_to["conversation_type"] == "2"
    )
    [opening] = fake.opened
    assert {"type": "CALLBACK", "topic": CHATBOT_TOPIC} in opening["subscriptions"]


async def test_a_group_message_without_the_mention_is_handed_over_as_not_mentioned(
    app_for: Callable[..., Any], fake: FakeDingTalk
) -> None:
    chat = Recording()
    async with stream(app_for, fake, chat):
        await deliver(fake, event("group_text", isInAtList=False, atUsers=[]))
    [asked] = chat.heard
    assert (asked.direct, asked.mentioned) == (False, False)


async def test_a_direct_message_is_direct(app_for: Callable[..., Any], fake: FakeDingTalk) -> None:
    chat = Recording()
    async with stream(app_for, fake, chat):
        await deliver(fake, event("direct_text"))
    [asked] = chat.heard
    assert (asked.direct, asked.text, asked.conversation) == (True, "approve 12", "cidDirectZhangsan000000==")
    assert asked.reply_to["conversation_type"] == "1" and asked.reply_to["user"] == "staff-1"


async def test_a_quoted_card_names_no_thread_and_the_text_keeps_the_incident_number(
    app_for: Callable[..., Any], fake: FakeDingTalk
) -> None:
    """DingTalk has no threads under a card; the quote names DingTalk's message id, not the card's outTrackId."""
    chat = Recording()
    async with stream(app_for, fake, chat):
        await deliver(fake, event("group_quote"))
    [asked] = chat.heard
    assert asked.thread is None and asked.text == "#12 silence this for 2 hours"


async def test_a_redelivery_is_handed_over_again_and_acknowledged(
    app_for: Callable[..., Any], fake: FakeDingTalk
) -> None:
    chat = Recording()
    async with stream(app_for, fake, chat):
        first = await deliver(fake, event("group_text"))
        again = await deliver(fake, event("group_text"))
    assert [a.message_id for a in chat.heard] == ["msgLq0BfVxS1pZ7mC2kT9eW4g=="] * 2, "chat dedupes, not this"
    assert first["code"] == again["code"] == 200


async def test_the_robots_name_left_in_the_text_is_taken_out(
    app_for: Callable[..., Any], fake: FakeDingTalk
) -> None:
    chat = Recording()
    async with stream(app_for, fake, chat, robot_name="aiops"):
        await deliver(fake, event("group_text", text={"content": "@aiops  why is web-1 slow?"}))
    assert [a.text for a in chat.heard] == ["why is web-1 slow?"]


async def test_a_picture_is_acknowledged_and_not_handed_over(
    app_for: Callable[..., Any], fake: FakeDingTalk
) -> None:
    chat = Recording()
    async with stream(app_for, fake, chat):
        ack = await deliver(fake, event("group_picture"))
    assert ack["code"] == 200 and chat.heard == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"msgId": None}, "msgId"),
        ({"conversationType": "3"}, "conversationType"),
        ({"conversationId": ""}, "conversationId"),
        ({"senderStaffId": None, "senderId": None}, "senderStaffId"),
        ({"text": "not an object"}, "text.content"),
    ],
)
async def test_a_malformed_message_is_logged_naming_its_field_and_acknowledged(
    app_for: Callable[..., Any],
    fake: FakeDingTalk,
    caplog: pytest.LogCaptureFixture,
    changes: dict[str, Any],
    field: str,
) -> None:
    chat = Recording()
    async with stream(app_for, fake, chat):
        ack = await deliver(fake, event("group_text", **changes))
    assert ack["code"] == 200 and chat.heard == []
    [said] = [r for r in caplog.records if "chatbot message was dropped" in r.getMessage()]
    assert field in said.getMessage() and said.exc_info is None


async def test_with_chat_off_a_message_is_acknowledged_and_dropped(
    app_for: Callable[..., Any], fake: FakeDingTalk
) -> None:
    async with stream(app_for, fake, None):
        ack = await deliver(fake, event("group_text"))
    assert ack["code"] == 200


async def test_a_message_chat_could_not_take_is_answered_as_a_failure(
    app_for: Callable[..., Any], fake: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    """So that DingTalk may deliver it again; chat keeps each message id once."""
    async with stream(app_for, fake, Recording(fails=True)):
        ack = await deliver(fake, event("group_text"))
    assert ack["code"] == 500 and "could not be handed to chat" in caplog.text


async def test_a_connection_with_the_wrong_secret_is_refused_and_hears_nothing(
    app_for: Callable[..., Any], fake: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-app-secret-0000"
    chat = Recording()
    async with app_for(server={"language": "en"}) as (_, services):
        channel = DingTalkChannel(config(fake, client_secret=wrong), services.templates, services.http)
        callbacks = DingTalkCallbacks(channel, services.decisions, chat)
        callbacks.start()
        for _ in range(100):
            if "could not be opened" in caplog.text:
                break
            await asyncio.sleep(0.05)
        await asyncio.wait_for(callbacks.stop(), 10)
    assert not fake.connected.is_set() and chat.heard == []
    assert "could not be opened" in caplog.text and wrong not in caplog.text and SECRET not in caplog.text


async def test_the_stream_opens_for_chat_even_without_card_callbacks(
    app_for: Callable[..., Any], fake: FakeDingTalk
) -> None:
    async with app_for(server={"language": "en"}) as (_, services):
        settings = config(fake, callbacks=False)
        channel = DingTalkChannel(settings, services.templates, services.http)
        off = Deciders(services.decisions, services.templates)
        assert inbound(settings, channel, off) is None
        on = inbound(settings, channel, Deciders(services.decisions, services.templates, Recording()))
        assert on is not None
        on.start()
        try:
            assert await asyncio.to_thread(fake.connected.wait, 10)
        finally:
            await on.stop()
    [opening] = fake.opened
    assert [s["topic"] for s in opening["subscriptions"]] == [CHATBOT_TOPIC]
