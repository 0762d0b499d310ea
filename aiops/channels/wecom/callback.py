"""What WeCom's callbacks to an app say: the URL check, and a press of a template card's button.

A route needs two calls. On GET, `verify_url(crypt, query)` gives the plaintext to answer with: bare, 200,
within 1 s, with nothing added (no quotes, BOM or newline). On POST, `receive(crypt, query, body)` gives the click,
or None for other events; answer 200 with an empty body within 5 s and act afterwards. Both raise `CallbackError`s
whose `status` is the answer: 401 for a bad signature, 400 for the rest.

The event (`MsgType` event, `Event` template_card_event; WeCom's "模板卡片事件推送", 90240) names the clicker
(`FromUserName`, a userid), the button (`EventKey`, the key the card gave it), the card (`TaskId`) and carries a
`ResponseCode` that lets the app update that card once within 72 hours. WeCom retries a callback not answered
within 5 s up to three times; `CardClick.dedup_key` is what a retry repeats.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass

from aiops.channels.wecom.api import ResponseCode
from aiops.channels.wecom.crypto import Malformed, MsgCrypt

CARD_EVENT = "template_card_event"


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


def verify_url(crypt: MsgCrypt, query: Mapping[str, str]) -> str:
    """The GET WeCom sends when the callback URL is saved: the decrypted `echostr` to answer with."""
    signature, timestamp, nonce, echostr = _params(query, "echostr")
    return crypt.verify_url(signature, timestamp, nonce, echostr)


def receive(crypt: MsgCrypt, query: Mapping[str, str], body: bytes) -> CardClick | None:
    """A POSTed callback: the click it reports, or None for any other event."""
    signature, timestamp, nonce = _params(query)
    return card_click(parse_event(crypt.decrypt_callback(signature, timestamp, nonce, body)))


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
    missing = [name for name in ("FromUserName", "EventKey", "TaskId", "ResponseCode") if not event.get(name)]
    if missing:
        raise Malformed(f"the template_card_event has no {', '.join(missing)}")
    try:
        agent_id, created = int(event.get("AgentID") or 0), int(event.get("CreateTime") or 0)
    except ValueError:
        raise Malformed("the template_card_event's AgentID or CreateTime is not a number") from None
    return CardClick(
        user_id=event["FromUserName"],
        corp_id=event.get("ToUserName", ""),
        agent_id=agent_id,
        task_id=event["TaskId"],
        key=event["EventKey"],
        response_code=ResponseCode(event["ResponseCode"], float(created)),
        created=created,
    )
