"""Messages people send the app's robot, as the Stream connection delivers them (topic
`/v1.0/im/bot/messages/get`), read into the `Asked` the chat listener takes.

The frame's data (dingtalk-stream's `ChatbotMessage`): `msgId` (a redelivery carries the same), `msgtype`,
`text.content`, `conversationType` ("1" a direct chat, "2" a group), `conversationId` (the group's
openConversationId, cid…), `senderStaffId` (the staff id `remediation.approvers.dingtalk` lists; only members of
the organisation have one — `senderId` is an opaque id otherwise), `isInAtList` (the robot was @mentioned),
`sessionWebhook` and `sessionWebhookExpiredTime` (a URL that answers in this chat, until then, in ms).

A group delivers only the messages that @mention the robot; DingTalk takes the robot's @name out of the text, and
`channels.dingtalk.robot_name`, when set, is taken out too in case a client leaves it in. DingTalk has no threads
under a card: a quoted message (`text.repliedMsg`, undocumented) names DingTalk's own message id, never the
card's outTrackId, so `thread` stays None and "#123" in the text names the incident instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiops.chat import Asked

DINGTALK = "dingtalk"
TEXT = "text"
DIRECT, GROUP = "1", "2"


class Malformed(ValueError):
    """A chatbot message without a field an answer needs; `field` names it."""

    def __init__(self, field: str, problem: str = "is missing") -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


def asked(data: Mapping[str, Any], channel: str, robot_name: str | None = None) -> Asked | None:
    """The message as an `Asked` for `channel`; None when it is not text (a picture, a file, rich text);
    `Malformed` naming the field when one it needs is missing or of the wrong kind."""
    if data.get("msgtype") != TEXT:
        return None
    conversation_type = _string(data, "conversationType")
    if conversation_type not in (DIRECT, GROUP):
        raise Malformed("conversationType", f"is {conversation_type!r}, not '1' or '2'")
    user = _user(data)
    return Asked(
        kind=DINGTALK,
        channel=channel,
        message_id=_string(data, "msgId"),
        user=user,
        text=_text(data, robot_name),
        direct=conversation_type == DIRECT,
        mentioned=data.get("isInAtList") is True,
        conversation=_string(data, "conversationId"),
        thread=None,
        reply_to=_reply_to(data, conversation_type, user),
    )


def _reply_to(data: Mapping[str, Any], conversation_type: str, user: str) -> dict[str, str]:
    """Where the answer goes: the session webhook while it lasts, then the robot's Open API calls, which need
    the group (conversation_id) or the person (user)."""
    where = {
        "conversation_type": conversation_type,
        "conversation_id": str(data["conversationId"]),
        "user": user,
    }
    webhook, expires = data.get("sessionWebhook"), data.get("sessionWebhookExpiredTime")
    if isinstance(webhook, str) and webhook.startswith(("https://", "http://")):
        where["session_webhook"] = webhook
        if isinstance(expires, int | str) and str(expires).isdigit():
            where["expires_ms"] = str(expires)
    return where


def _user(data: Mapping[str, Any]) -> str:
    """The staff id; a sender from outside the organisation has only `senderId`, which no allow-list names."""
    for field in ("senderStaffId", "senderId"):
        value = data.get(field)
        if isinstance(value, str) and value:
            return value
    raise Malformed("senderStaffId")


def _text(data: Mapping[str, Any], robot_name: str | None) -> str:
    content = data.get(TEXT)
    text = content.get("content") if isinstance(content, Mapping) else None
    if not isinstance(text, str):
        raise Malformed("text.content")
    if robot_name:
        text = text.replace(f"@{robot_name}", " ")
    return text.strip()


def _string(data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise Malformed(field)
    return value
