"""What WeCom's callbacks to an app say: the URL check, a press of a template card's button, and a text message
someone wrote to the app.

A route needs two calls. On GET, `verify_url(crypt, query)` gives the plaintext to answer with: bare, 200,
within 1 s, with nothing added (no quotes, BOM or newline). On POST, `receive(crypt, query, body)` gives the click,
or None for other events; answer 200 with an empty body within 5 s and act afterwards. Both raise `CallbackError`s
whose `status` is the answer: 401 for a bad signature, 400 for the rest.

The event (`MsgType` event, `Event` template_card_event; WeCom's "模板卡片事件推送", 90240) names the clicker
(`FromUserName`, a userid), the button (`EventKey`, the key the card gave it), the card (`TaskId`) and carries a
`ResponseCode` that lets the app update that card once within 72 hours. WeCom retries a callback not answered
within 5 s up to three times; `CardClick.dedup_key` is what a retry repeats.

A text message (`MsgType` text; "接收普通消息", 90239) is always written to the app, one to one: it names the
writer (`FromUserName`), what they wrote (`Content`) and its `MsgId`, which a retry repeats.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass

from aiops.channels.wecom.api import ResponseCode
from aiops.channels.wecom.crypto import Malformed, MsgCrypt

CARD_EVENT = "template_card_event"
TEXT = "text"


@dataclass(frozen=True)
class CardClick:
    """One press of a button_interaction card's button."""

    user_id: str  # FromUserName: the clicker's userid in the corp
    corp_id: str  # ToUserName
    agent_id: int
    task_id: str
    key: str  # EventKey: the button's key, e.g. "approve:42"
    response_code: ResponseCode
    created: int  # CreateTime, seconds since the epoch

    @property
    def dedup_key(self) -> str:
        return f"{self.task_id}\n{self.user_id}\n{self.created}\n{self.key}"


@dataclass(frozen=True)
class TextMessage:
    """A text message someone wrote to the app."""

    user_id: str  # FromUserName: the writer's userid in the corp
    corp_id: str  # ToUserName
    agent_id: int
    msg_id: str  # MsgId: the same in WeCom's retries of the callback
    content: str
    created: int  # CreateTime, seconds since the epoch


def verify_url(crypt: MsgCrypt, query: Mapping[str, str]) -> str:
    """The GET WeCom sends when the callback URL is saved: the decrypted `echostr` to answer with."""
    signature, timestamp, nonce, echostr = _params(query, "echostr")
    return crypt.verify_url(signature, timestamp, nonce, echostr)


def receive(crypt: MsgCrypt, query: Mapping[str, str], body: bytes) -> CardClick | None:
    """A POSTed callback: the click it reports, or None for any other event."""
    return card_click(read(crypt, query, body))


def read(crypt: MsgCrypt, query: Mapping[str, str], body: bytes) -> dict[str, str]:
    """A POSTed callback's event (or message), checked and decrypted: its top-level elements, by tag."""
    signature, timestamp, nonce = _params(query)
    return parse_event(crypt.decrypt_callback(signature, timestamp, nonce, body))


def _params(query: Mapping[str, str], *more: str) -> list[str]:
    names = ("msg_signature", "timestamp", "nonce", *more)
    missing = [name for name in names if not query.get(name)]
    if missing:
        raise Malformed(f"the callback's query has no {', '.join(missing)}")
    return [query[name] for name in names]


def parse_event(xml: str) -> dict[str, str]:
    """The decrypted event's top-level elements, by tag."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        raise Malformed("the decrypted callback is not XML") from None
    return {child.tag: (child.text or "").strip() for child in root}


def card_click(event: dict[str, str]) -> CardClick | None:
    """The click an event reports; None for events that are not a template card's button press."""
    if event.get("MsgType") != "event" or event.get("Event") != CARD_EVENT:
        return None
    _require(event, CARD_EVENT, "FromUserName", "EventKey", "TaskId", "ResponseCode")
    agent_id, created = _numbers(event, CARD_EVENT)
    return CardClick(
        user_id=event["FromUserName"],
        corp_id=event.get("ToUserName", ""),
        agent_id=agent_id,
        task_id=event["TaskId"],
        key=event["EventKey"],
        response_code=ResponseCode(event["ResponseCode"], float(created)),
        created=created,
    )


def text_message(event: dict[str, str]) -> TextMessage | None:
    """The text message an event is; None for other messages (images, voice…) and for events."""
    if event.get("MsgType") != TEXT:
        return None
    _require(event, "text message", "FromUserName", "MsgId")
    agent_id, created = _numbers(event, "text message")
    return TextMessage(
        user_id=event["FromUserName"],
        corp_id=event.get("ToUserName", ""),
        agent_id=agent_id,
        msg_id=event["MsgId"],
        content=event.get("Content", ""),
        created=created,
    )


def _require(event: dict[str, str], what: str, *names: str) -> None:
    missing = [name for name in names if not event.get(name)]
    if missing:
        raise Malformed(f"the {what} has no {', '.join(missing)}")


def _numbers(event: dict[str, str], what: str) -> tuple[int, int]:
    """The event's AgentID and CreateTime (0 when absent)."""
    try:
        return int(event.get("AgentID") or 0), int(event.get("CreateTime") or 0)
    except ValueError:
        raise Malformed(f"the {what}'s AgentID or CreateTime is not a number") from None
