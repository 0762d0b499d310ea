"""The Feishu (Lark) custom group robot: a signed webhook that posts card JSON 2.0 messages into one group.

A custom robot cannot receive clicks and cannot edit what it sent, so a proposal's button is a link to the web
approval page, and an update is a new card.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ConfigDict, Field, SecretStr

from aiops.channels import Announcement, Capabilities, ChannelError, Digest, RateLimit, digest_title, fitting
from aiops.channels.feishu.card import ACTION_COLOURS, COLOURS
from aiops.channels.feishu.markdown import md, mdtext
from aiops.channels.fitting import Cut, dumps, line
from aiops.channels.records import ProposalRecord
from aiops.channels.robot import Robot, fit_robot, post
from aiops.channels.routing import Routing
from aiops.proxy import Destination, Proxied, destination
from aiops.units import HttpUrl, Seconds

MAX_BODY = 20_000  # bytes of the request body, signature included
_SIGNATURE_ROOM = 128  # "timestamp" and "sign", added when sending
_URGENCY = ("red", "orange", "blue", "grey")  # header colours, most urgent first
_MENTION = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Answers a later attempt may get past, and how long to wait (seconds): the 100/min quota and the on-the-hour
# throttle (11232), too many requests per second (9499, 99991400).
_THROTTLED = {11232: 60.0, 9499: 1.0, 99991400: 1.0}
_BAD_SIGNATURE = 19021


class FeishuWebhookConfig(Routing, Proxied):
    """One custom robot of one group; `match` and `mentions` (from `Routing`) choose what it announces and whom
    it @mentions (open_ids, ou_…)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="feishu_webhook", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: HttpUrl  # https://open.feishu.cn/open-apis/bot/v2/hook/<token> (Lark: open.larksuite.com)
    secret: SecretStr | None = None  # the robot's "signature verification" secret
    timeout: Seconds = 10.0

    def destinations(self, where: str) -> list[Destination]:
        return destination(where, self, self.url)


def sign(timestamp: int, secret: str) -> str:
    """Feishu's robot signature: HMAC-SHA256 keyed with "timestamp\\nsecret" over an EMPTY message, base64.
    `timestamp` is in seconds. (DingTalk's looks alike and differs in all three respects.)"""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


CAPABILITIES = Capabilities(
    edits=False, buttons="links", max_bytes=MAX_BODY, limits=RateLimit(per_minute=100, per_second=5)
)


class FeishuWebhookChannel(Robot[FeishuWebhookConfig]):
    """Posts cards to one Feishu group through its custom robot."""

    limits = CAPABILITIES.limits

    def render(self, announcement: Announcement) -> str:
        return fit_robot(lambda cut: _message(self._card(announcement, cut)), MAX_BODY - _SIGNATURE_ROOM)

    def render_digest(self, digest: Digest) -> str:
        title = line(digest_title(self._t, digest), 100)
        colours = [COLOURS.get(entry.severity, "grey") for entry in digest.entries]
        elements = [
            _markdown(self._text("digest.md.j2", digest=digest)),
            _button(self._t("robot_all_incidents"), f"{digest.base_url}/", "default"),
        ]
        card = _card(title, min(colours, key=_URGENCY.index, default="grey"), elements)
        return fit_robot(lambda cut: _message(card), MAX_BODY - _SIGNATURE_ROOM)

    async def send(self, body: str) -> str | None:
        message = json.loads(body)
        if self._config.secret is not None:
            # Signed when sent, not when rendered: the outbox may hold a message longer than the hour allowed.
            timestamp = int(self._clock())
            signature = sign(timestamp, self._config.secret.get_secret_value())
            message = {"timestamp": str(timestamp), "sign": signature, **message}
        robot = f"Feishu robot {self.name}"
        answer = await post(
            self._http, self._config.url, dumps(message), robot=robot, time_limit=self._config.timeout
        )
        _check(answer, robot, self.name)
        return None  # a custom robot's message has no handle: it cannot be edited

    def _card(self, announcement: Announcement, cut: Cut) -> dict[str, Any]:
        context = fitting.context(announcement, cut, _MENTION)
        elements = [_markdown(self._text(f"{announcement.purpose}.md.j2", **context))]
        elements += self._proposals(announcement, cut, context)
        title = line(self._text("title.txt.j2", **context), 100)
        return _card(title, _colour(announcement), elements)

    def _proposals(
        self, announcement: Announcement, cut: Cut, context: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Each proposal as text, followed for a pending one by a button opening its approval page."""
        shown: Sequence[ProposalRecord] = announcement.proposals
        if cut.proposals is not None:
            shown = shown[: cut.proposals]
        elements: list[dict[str, Any]] = []
        for proposal in shown:
            elements.append(_markdown(self._text("proposal.md.j2", **context, p=proposal)))
            link = announcement.approval_links.get(proposal.id)
            if link and proposal.state == "pending":
                label = self._t("robot_approve_button", id=proposal.id, action=proposal.action_id)
                elements.append(_button(line(label, 100), link, "primary_filled"))
        if shown and announcement.pause_url is not None:
            elements.append(_button(self._t("pause_on_web"), announcement.pause_url, "danger"))
        return elements

    def _text(self, template: str, **context: Any) -> str:
        found = self._templates.get_template(f"feishu_webhook/{template}")
        return found.render(md=md, mdtext=mdtext, **context).strip()


def _check(answer: Mapping[str, Any], robot: str, name: str) -> None:
    """Map the robot's answer to success or a ChannelError saying whether to retry."""
    code = answer.get("code", answer.get("StatusCode"))  # older robots answered StatusCode/StatusMessage
    if code == 0:
        return
    said = f"code {code}: {answer.get('msg', answer.get('StatusMessage', ''))}"
    if code in _THROTTLED:
        raise ChannelError(f"{robot} is rate limited ({said})", retryable=True, retry_after=_THROTTLED[code])
    if code == _BAD_SIGNATURE:
        raise ChannelError(
            f"{robot} refused the signature ({said}); check channels.feishu_webhook {name}'s secret against the "
            "robot's security settings, and this host's clock",
            retryable=False,
        )
    raise ChannelError(f"{robot} refused the message ({said})", retryable=False)


def _message(card: dict[str, Any]) -> dict[str, Any]:
    return {"msg_type": "interactive", "card": card}


def _card(title: str, colour: str, elements: list[dict[str, Any]]) -> dict[str, Any]:
    header = {"title": {"tag": "plain_text", "content": title}, "template": colour}
    return {"schema": "2.0", "header": header, "body": {"elements": elements}}


def _markdown(content: str) -> dict[str, Any]:
    return {"tag": "markdown", "content": content}


def _button(label: str, url: str, kind: str) -> dict[str, Any]:
    """A link button: a custom robot's card may only open URLs, never call back."""
    return {
        "tag": "button",
        "type": kind,
        "text": {"tag": "plain_text", "content": label},
        "behaviors": [{"type": "open_url", "default_url": url}],
    }


def _colour(announcement: Announcement) -> str:
    if announcement.purpose == "resolved":
        return "green"
    if announcement.purpose == "action" and announcement.reported is not None:
        return ACTION_COLOURS.get(announcement.reported.state, "blue")
    return COLOURS.get(announcement.incident.severity, "grey")
