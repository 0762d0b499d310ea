"""Chat messages to the Feishu app's bot: the `im.message.receive_v1` event (schema 2.0), read into an `Asked` and
handed to the chat listener, however it arrived (`POST /callbacks/feishu` or the long connection).

Feishu delivers every direct (p2p) message to the bot, and group messages that @mention it (all of a group's
messages only with a sensitive permission). A group message is for aiops when the bot's own open_id is among its
`mentions`; the text carries each mention as a key (`@_user_1`), which is taken out for the bot and replaced by the
person's name for anyone else. A reply in a card's thread has the card's message_id as `root_id` — the handle the
channel's `send` returned — so `Asked.thread` is that id. Only text messages from people are read; anything else
is acknowledged and left. Feishu delivers at least once: a redelivery carries the same message_id, which the
listener answers once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiops.channels import ChannelError
from aiops.channels.feishu.callback import Malformed
from aiops.chat import Asked, Listener

log = logging.getLogger("aiops.channels.feishu")
FEISHU = "feishu"
MESSAGE_RECEIVED = "im.message.receive_v1"
# Feishu's ids (om_…, oc_…, ou_…) are ASCII; anything else would not belong in the store.
_ID = re.compile(r"[!-~]{1,256}")
_MENTION_KEY = re.compile(r"@_user_\d+")
BotOpenId = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class Mention:
    """Someone a message @mentions: its placeholder in the text (`@_user_1`), their open_id and name."""

    key: str
    open_id: str | None
    name: str


@dataclass(frozen=True)
class Message:
    """A text message a person wrote, as the event reports it; `text` still holds the mentions' keys."""

    message_id: str
    open_id: str
    chat_id: str
    direct: bool
    root_id: str | None
    text: str
    mentions: tuple[Mention, ...]


def message(payload: Mapping[str, Any]) -> Message | None:
    """The text message an `im.message.receive_v1` payload reports; None for any other kind of message (an image,
    a file, a sticker) or one not from a person. Raises `Malformed` naming the field at fault."""
    event = _object(payload, "event")
    sender, body = _object(event, "event.sender"), _object(event, "event.message")
    if sender.get("sender_type") != "user" or body.get("message_type") != "text":
        return None
    open_id = _id(_object(sender, "event.sender.sender_id"), "event.sender.sender_id.open_id")
    return Message(
        message_id=_id(body, "event.message.message_id"),
        open_id=open_id,
        chat_id=_id(body, "event.message.chat_id"),
        direct=body.get("chat_type") == "p2p",
        root_id=_id(body, "event.message.root_id") if body.get("root_id") else None,
        text=_text(body.get("content")),
        mentions=_mentions(body.get("mentions")),
    )


def asked(message: Message, channel: str, bot_open_id: str | None) -> Asked:
    """The `Asked` of `message`, received by the channel named `channel` whose bot's open_id is `bot_open_id`."""
    return Asked(
        kind=FEISHU,
        channel=channel,
        message_id=message.message_id,
        user=message.open_id,
        text=_said(message, bot_open_id),
        direct=message.direct,
        mentioned=bot_open_id is not None and any(m.open_id == bot_open_id for m in message.mentions),
        conversation=message.chat_id,
        thread=message.root_id,
        # A direct message is answered with a quoting reply, anything else in the message's thread.
        reply_to={"message_id": message.message_id, "in_thread": "false" if message.direct else "true"},
    )


class FeishuChat:
    """Hands the messages of one Feishu app to the chat listener; `listener` None: chat is off, every message is
    acknowledged and left."""

    def __init__(self, channel: str, listener: Listener | None, bot_open_id: BotOpenId) -> None:
        self._channel = channel
        self._listener = listener
        self._bot_open_id = bot_open_id

    async def deliver(self, payload: Mapping[str, Any]) -> bool:
        """Read one `im.message.receive_v1` payload and hand it over; False when it could not be recorded now and
        Feishu should deliver it again (the bot's open_id unknown, the store unreachable)."""
        if self._listener is None:
            return True
        try:
            found = message(payload)
        except Malformed as malformed:
            log.warning("feishu %s: a chat message could not be read: %s", self._channel, malformed)
            return True  # delivering it again would not make it readable
        if found is None:
            return True
        try:
            bot = await self._bot_open_id() if found.mentions else None
        except ChannelError as error:
            log.warning(
                "feishu %s: the bot's open_id is unknown (%s); set channels.feishu.bot_open_id, or Feishu "
                "delivers message %s again",
                self._channel,
                error,
                found.message_id,
            )
            return False
        try:
            heard = await self._listener.hear(asked(found, self._channel, bot))
        except Exception:
            log.exception("feishu %s: message %s could not be recorded", self._channel, found.message_id)
            return False
        log.info("feishu %s: message %s %s", self._channel, found.message_id, heard)
        return True


def _said(message: Message, bot_open_id: str | None) -> str:
    """The text without the bot's mention; anyone else's mention as `@name`."""
    names = {m.key: "" if m.open_id == bot_open_id else f"@{m.name}" for m in message.mentions}
    return _MENTION_KEY.sub(lambda key: names.get(key.group(), key.group()), message.text).strip()


def _text(content: object) -> str:
    """The text of a text message's `content`, a JSON string `{"text": "..."}`."""
    if not isinstance(content, str):
        raise Malformed("event.message.content is missing or not a JSON string")
    try:
        document = json.loads(content)
    except ValueError:
        raise Malformed("event.message.content is not JSON") from None
    text = document.get("text") if isinstance(document, dict) else None
    if not isinstance(text, str):
        raise Malformed("event.message.content has no text")
    return text


def _mentions(value: object) -> tuple[Mention, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise Malformed("event.message.mentions is not a list")
    found = []
    for index, item in enumerate(value):
        where = f"event.message.mentions[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise Malformed(f"{where}.key is missing")
        ids = item.get("id")
        open_id = ids.get("open_id") if isinstance(ids, dict) else None
        name = item.get("name")
        found.append(
            Mention(
                item["key"],
                open_id if isinstance(open_id, str) else None,
                name if isinstance(name, str) and name else item["key"],
            )
        )
    return tuple(found)


def _object(parent: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = parent.get(name.rsplit(".", 1)[-1])
    if not isinstance(value, dict):
        raise Malformed(f"{name} is missing or not an object")
    return value


def _id(parent: Mapping[str, Any], name: str) -> str:
    value = parent.get(name.rsplit(".", 1)[-1])
    if not isinstance(value, str) or not value:
        raise Malformed(f"{name} is missing")
    if not _ID.fullmatch(value):
        raise Malformed(f"{name} is not a Feishu id: {value!r:.40}")
    return value
