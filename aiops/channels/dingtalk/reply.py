"""aiops's answers in DingTalk chats: a markdown message, sent through the message's session webhook while it lasts
(about 90 minutes), then through the robot's Open API (openapi.py).

The body the outbox keeps is the JSON `{"title", "text", "mention", "at_user_ids"}`: the markdown's title (what a
notification shows) and text, rendered from aiops/templates/dingtalk/reply*.j2, and the @mention of the person
asked for. Only the session webhook can @mention someone (its `at.atUserIds`, with "@staffId" in the text); the
Open API's `sampleMarkdown` cannot, so the mention is left out there. DingTalk's markdown cannot fold anything away:
what the answer ran is a short list.

The session webhook answers `{"errcode": 0, "errmsg": "ok"}`; 130101 ("send too fast") and 410100 are throttling.
DingTalk does not document what an expired or unknown session answers: any other refusal falls back to the Open API,
which a refused message has not reached.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from jinja2 import Environment

from aiops.channels import ChannelError
from aiops.channels.dingtalk.card import MAX_BODY, clip, line
from aiops.channels.dingtalk.markdown import md, paragraphs
from aiops.channels.fitting import dumps, size
from aiops.chat import Reply

log = logging.getLogger("aiops.channels.dingtalk")
TITLE = 60  # characters of the title, which the chat list and notifications show
# Bytes left for the text: the Open API sends it as a JSON string inside the JSON request, which escapes each
# quote and backslash (DingTalk's markdown escapes are backslashes) once more.
_TEXT_ROOM = MAX_BODY - 2_000
_STAFF_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what a staff id looks like; other ids are not @mentioned
THROTTLED = frozenset({130101, 410100})
# Seconds before a throttled session webhook is tried again: robots may send 20 messages a minute.
_THROTTLE_WINDOW = 60.0


@dataclass(frozen=True)
class Room:
    """How much of a reply a message shows: how many of the answer's paragraphs and the characters of each, how
    many of the things it ran, and the characters of each one's query and result."""

    lines: int | None
    text: int | None
    ran: int | None
    query: int


# Fullest first: the answer keeps its words longest; what it ran goes first. A chat answer stays short: ten of the
# things it ran at most, the rest counted.
ROOMS = (
    Room(lines=None, text=None, ran=10, query=300),
    Room(lines=None, text=4000, ran=10, query=200),
    Room(lines=20, text=2000, ran=5, query=100),
    Room(lines=10, text=1000, ran=0, query=100),
    Room(lines=3, text=300, ran=0, query=100),  # always fits: 300 characters weigh 2,400 bytes at most
)


class Replies:
    """Renders a `Reply` into the body `send` takes, from the templates under `dingtalk/`."""

    def __init__(self, templates: Environment) -> None:
        self._templates = templates

    def render(self, reply: Reply) -> str:
        user = reply.to_user if reply.to_user and _STAFF_ID.fullmatch(reply.to_user) else None
        body = {
            "title": line(self._render("reply_title.txt.j2", reply=reply), TITLE),
            "mention": self._render("reply_mention.md.j2", user=user) if user else "",
            "at_user_ids": [user] if user else [],
        }
        for room in ROOMS:
            text = self._render("reply.md.j2", reply=reply, room=room)
            if _weight(text) <= _TEXT_ROOM:
                break
        return dumps({**body, "text": text})

    def _render(self, template: str, **context: Any) -> str:
        found = self._templates.get_template(f"dingtalk/{template}")
        return found.render(md=md, paragraphs=paragraphs, clip=clip, **context).strip()


def _weight(text: str) -> int:
    """Bytes of the text as the Open API's request carries it: a JSON string inside a JSON string."""
    return size(dumps(dumps(text)))


def message(body: str) -> dict[str, Any]:
    """The body `render` made, read back."""
    found: dict[str, Any] = json.loads(body)
    return found


async def by_session_webhook(
    http: httpx.AsyncClient, webhook: str, body: Mapping[str, Any], *, name: str, time_limit: float
) -> bool:
    """Post the reply to the message's session webhook: True when sent, False when the session refused it (the
    Open API should send it instead); throttling and failures a retry may get past raise."""
    text = "\n\n".join(part for part in (body["text"], body.get("mention")) if part)
    request: dict[str, Any] = {"msgtype": "markdown", "markdown": {"title": body["title"], "text": text}}
    if body.get("at_user_ids"):
        request["at"] = {"atUserIds": list(body["at_user_ids"]), "isAtAll": False}
    where = f"dingtalk {name}: the session webhook"
    headers = {"Content-Type": "application/json; charset=utf-8"}
    try:
        response = await http.post(
            webhook, content=dumps(request).encode(), headers=headers, timeout=time_limit
        )
    except httpx.TransportError as error:
        # httpx's errors say what failed, not the URL (whose session parameter lets anyone post in the chat).
        raise ChannelError(f"{where} failed: {type(error).__name__}: {error}", retryable=True) from None
    if response.status_code >= 500 or response.status_code == 429:
        raise ChannelError(f"{where} answered HTTP {response.status_code}", retryable=True)
    return _sent(where, response, _errcode(response))


def _sent(where: str, response: httpx.Response, code: object) -> bool:
    if code == 0:
        return True
    if code in THROTTLED:
        raise ChannelError(
            f"{where} is throttled (errcode {code})", retryable=True, retry_after=_THROTTLE_WINDOW
        )
    log.warning(
        "%s refused the reply (HTTP %s, errcode %s); sending it by the Open API",
        where,
        response.status_code,
        code,
    )
    return False


def _errcode(response: httpx.Response) -> object:
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer.get("errcode") if isinstance(answer, dict) else None


def webhook_alive(reply_to: Mapping[str, str], now: Callable[[], float], margin: float = 30.0) -> str | None:
    """The session webhook, while it has at least `margin` seconds left; None when there is none or it has
    expired (a webhook without a known expiry is tried: a refusal falls back)."""
    webhook = reply_to.get("session_webhook")
    expires = reply_to.get("expires_ms", "")
    if not webhook:
        return None
    if expires.isdigit() and int(expires) / 1000 - margin <= now():
        return None
    return webhook
