"""The DingTalk custom group robot: a signed webhook that posts markdown, or an actionCard when there are
proposals to approve, into one group.

A custom robot cannot receive clicks and cannot edit what it sent, so a proposal's button is a link to the web
approval page, and an update is a new message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator

from aiops.channels import Announcement, Capabilities, ChannelError, Digest, RateLimit, digest_title, fitting
from aiops.channels.dingtalk.markdown import md, paragraphs
from aiops.channels.fitting import Cut, line
from aiops.channels.records import ProposalRecord
from aiops.channels.robot import Robot, fit_robot, post
from aiops.channels.routing import Routing
from aiops.proxy import Destination, Proxied, destination
from aiops.units import HttpUrl, Seconds

MAX_BODY = 20_000  # bytes of the request body (errcode 460101 beyond)
_MOBILE = re.compile(r"\+?[0-9][0-9-]{5,19}")
_USER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# "send too fast": over 20 messages a minute, and the robot is then throttled for 10 minutes.
_THROTTLED = 130101
_THROTTLE_SECONDS = 600.0
_TOO_LARGE = 460101
_SECURITY = 310000  # signature, timestamp, keyword or IP allowlist


class DingTalkWebhookConfig(Routing, Proxied):
    """One custom robot of one group; `match` and `mentions` (from `Routing`) choose what it announces and whom
    it @mentions (mobile numbers go to at.atMobiles, other ids to at.atUserIds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="dingtalk_webhook", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: HttpUrl  # https://oapi.dingtalk.com/robot/send?access_token=…
    secret: SecretStr | None = None  # the robot's "加签" secret, SEC…
    timeout: Seconds = 10.0

    def destinations(self, where: str) -> list[Destination]:
        return destination(where, self, self.url)

    @field_validator("url")
    @classmethod
    def _robot_url(cls, url: str) -> str:
        query = parse_qs(urlsplit(url).query)
        if "access_token" not in query:
            raise ValueError("must be the robot's webhook URL, ending in ?access_token=…")
        if "sign" in query or "timestamp" in query:
            raise ValueError(
                "must not carry timestamp or sign: set secret instead, and each message is signed"
            )
        return url


def sign(timestamp: int, secret: str) -> str:
    """DingTalk's robot signature: HMAC-SHA256 keyed with the SECRET over "timestamp\\nsecret", base64, then
    URL-encoded for the query string. `timestamp` is in milliseconds. (Feishu's looks alike and differs.)"""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


CAPABILITIES = Capabilities(edits=False, buttons="links", max_bytes=MAX_BODY, limits=RateLimit(per_minute=20))


class DingTalkWebhookChannel(Robot[DingTalkWebhookConfig]):
    """Posts messages to one DingTalk group through its custom robot."""

    limits = CAPABILITIES.limits

    def render(self, announcement: Announcement) -> str:
        return fit_robot(lambda cut: self._message(announcement, cut), MAX_BODY)

    def render_digest(self, digest: Digest) -> str:
        title = line(digest_title(self._t, digest), 100)
        text = self._text("digest.md.j2", digest=digest, title=title)
        return fit_robot(
            lambda cut: {"msgtype": "markdown", "markdown": {"title": title, "text": text}}, MAX_BODY
        )

    async def send(self, body: str) -> str | None:
        url = self._config.url
        if self._config.secret is not None:
            # Signed when sent, not when rendered: the outbox may hold a message longer than the hour allowed.
            timestamp = int(self._clock() * 1000)
            signature = sign(timestamp, self._config.secret.get_secret_value())  # already URL-encoded
            url = f"{url}&timestamp={timestamp}&sign={signature}"
        robot = f"DingTalk robot {self.name}"
        answer = await post(self._http, url, body, robot=robot, time_limit=self._config.timeout)
        _check(answer, robot, self.name)
        return None  # a custom robot's message has no handle: it cannot be edited

    def _message(self, announcement: Announcement, cut: Cut) -> dict[str, Any]:
        """An actionCard when a proposal waits for approval (its buttons link to the approval pages), else
        markdown; both @mention the on-call."""
        mobiles = [m for m in announcement.mentions if _MOBILE.fullmatch(m)]
        users = [m for m in announcement.mentions if m not in mobiles and _USER_ID.fullmatch(m)]
        context = {**fitting.context(announcement, cut), "mentions": mobiles + users}
        title = line(self._text("title.txt.j2", **context), 100)
        text = self._text(f"{announcement.purpose}.md.j2", **context, title=title)
        buttons = self._buttons(announcement, cut)
        message: dict[str, Any]
        if buttons:
            orientation = "1" if len(buttons) <= 2 else "0"  # side by side, or stacked when there are more
            card = {"title": title, "text": text, "btnOrientation": orientation, "btns": buttons}
            message = {"msgtype": "actionCard", "actionCard": card}
        else:
            message = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
        if mobiles or users:
            message["at"] = {"atMobiles": mobiles, "atUserIds": users, "isAtAll": False}
        return message

    def _buttons(self, announcement: Announcement, cut: Cut) -> list[dict[str, str]]:
        shown: Sequence[ProposalRecord] = announcement.proposals
        if cut.proposals is not None:
            shown = shown[: cut.proposals]
        buttons = []
        for proposal in shown:
            link = announcement.approval_links.get(proposal.id)
            if link and proposal.state == "pending":
                label = self._t("robot_approve_button", id=proposal.id, action=proposal.action_id)
                buttons.append({"title": line(label, 60), "actionURL": link})
        if shown and announcement.pause_url is not None:
            buttons.append({"title": self._t("pause_on_web"), "actionURL": announcement.pause_url})
        return buttons

    def _text(self, template: str, **context: Any) -> str:
        found = self._templates.get_template(f"dingtalk_webhook/{template}")
        return found.render(md=md, mdtext=paragraphs, **context).strip()


def _check(answer: Mapping[str, Any], robot: str, name: str) -> None:
    """Map the robot's answer to success or a ChannelError saying whether to retry."""
    code = answer.get("errcode")
    if code == 0:
        return
    said = f"errcode {code}: {answer.get('errmsg', '')}"
    if code == _THROTTLED:
        raise ChannelError(f"{robot} is throttled ({said})", retryable=True, retry_after=_THROTTLE_SECONDS)
    if code == _SECURITY:
        raise ChannelError(
            f"{robot} refused the message on its security settings ({said}); check channels.dingtalk_webhook "
            f"{name}'s secret, the robot's keyword and IP settings, and this host's clock",
            retryable=False,
        )
    if code == _TOO_LARGE:
        raise ChannelError(f"{robot} refused the message as too large ({said})", retryable=False)
    raise ChannelError(f"{robot} refused the message ({said})", retryable=False)
