"""The Discord bot channel: each incident is one message (an embed and its buttons) in one channel, edited in place,
with Approve / Reject buttons per pending proposal and Pause under automatic remediation. Clicks arrive as
interactions over HTTP at `POST /callbacks/discord` (`clicks.py`); see docs/decisions.md for why not the Gateway.

```yaml
channels:
  discord:
    application_id: "1000000000000000001"     # General Information → Application ID
    public_key: 03a107bff3ce…                 # General Information → Public Key (64 hex digits)
    bot_token: ${DISCORD_BOT_TOKEN}           # Bot → Token
    channel_id: "1100000000000000001"         # the channel the bot posts in
    mentions: {critical: ["123456789012345678"]}   # user ids, pinged in the message's content
    # command: aiops                          # the slash command people ask aiops with (commands.py)
```

People ask aiops with a slash command (chat, `aiops.chat`; see `commands.py`); the answer edits the command's
"thinking…" message through the interaction's token, or, once that has expired (15 minutes), is posted in the
channel the command was run in (`reply`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import httpx
from jinja2 import Environment
from pydantic import ConfigDict, Field, SecretStr, field_validator

from aiops.channels import Announcement, Capabilities, ChannelError, Digest, RateLimit, digest_title, fitting
from aiops.channels.decisions import HASH_PREFIX, Button
from aiops.channels.discord import markdown
from aiops.channels.discord.api import (
    API,
    DANGER,
    EMBED_LIMITS,
    LINK,
    ROWS_LIMIT,
    SECONDARY,
    SUCCESS,
    DiscordError,
    DiscordRest,
    button,
    message,
    row,
)
from aiops.channels.discord.replies import Replies
from aiops.channels.fitting import Cut
from aiops.channels.records import ProposalRecord
from aiops.channels.robot import CUTS, LAST_RESORT
from aiops.channels.routing import Routing
from aiops.chat import Reply
from aiops.proxy import Destination, Proxied, destination
from aiops.units import HttpUrl, Seconds

DESCRIPTION = EMBED_LIMITS["description"]
TITLE = EMBED_LIMITS["title"]
_SNOWFLAKE = re.compile(r"[0-9]{15,21}")
_COLOURS = {"critical": 0xE03E3E, "error": 0xE03E3E, "warning": 0xF2A33A, "info": 0x3A8DF2}
_ACTION_COLOURS = {"succeeded": 0x3BA55C, "failed": 0xE03E3E, "unknown": 0xE03E3E}
_GREEN, _GREY = 0x3BA55C, 0x99AAB5
_TOKEN_MARGIN = 30.0  # seconds before a command's token expires that the reply stops counting on it


class DiscordConfig(Routing, Proxied):
    """One bot posting to one channel; `match` and `mentions` (from `Routing`) choose what it announces and whom it
    pings (user ids)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="discord", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    application_id: str = Field(pattern=_SNOWFLAKE.pattern)
    public_key: str = Field(pattern=r"^[0-9a-fA-F]{64}$")  # verifies interactions; public, so not a secret
    bot_token: SecretStr
    channel_id: str = Field(pattern=_SNOWFLAKE.pattern)
    # The slash command's name, as registered for the application (lower case, at most 32 characters).
    command: str = Field(default="aiops", pattern=r"^[-_a-z0-9]{1,32}$")
    api: HttpUrl = API
    timeout: Seconds = 10.0

    @field_validator("bot_token")
    @classmethod
    def _token(cls, token: SecretStr) -> SecretStr:
        if token.get_secret_value().startswith("Bot "):
            raise ValueError("must be the token alone, without the 'Bot ' prefix")
        return token

    def destinations(self, where: str) -> list[Destination]:
        return destination(where, self, self.api)


CAPABILITIES = Capabilities(
    edits=True, buttons="callbacks", max_bytes=None, limits=RateLimit(per_minute=60, per_second=1)
)


class DiscordChannel:
    """The `Channel` for one Discord bot and channel. A message's body is the JSON of its message; its handle the
    message id. It is `Replying` too: a chat reply's body is a message's JSON as well. `now` (seconds since the
    epoch) tells whether a command's token still edits its answer; `clock` paces the rate limits."""

    # Discord documents 50 requests a second per bot and per-route buckets learnt from its headers, which
    # `DiscordRest` follows. Creating messages in one channel is reported (by third parties, not in Discord's docs)
    # to allow 5 in 5 s; the outbox stays under that, and folds a storm into digests past 60 a minute.
    limits = CAPABILITIES.limits
    immediate = False
    results_on_card = False

    def __init__(
        self,
        config: DiscordConfig,
        templates: Environment,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.name = config.name
        self.config = config
        self.routing: Routing = config
        self._templates = templates
        self._t = cast(Callable[..., str], templates.globals["t"])
        self._replies = Replies(templates)
        self._now = now
        extra: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
        self.rest = DiscordRest(
            http,
            bot_token=config.bot_token.get_secret_value(),
            application_id=config.application_id,
            base_url=config.api,
            time_limit=config.timeout,
            clock=clock,
            **extra,
        )

    def render(self, announcement: Announcement) -> str:
        mentions = [m for m in announcement.mentions if _SNOWFLAKE.fullmatch(m)]
        content = " ".join(f"<@{m}>" for m in mentions)
        title = _title(self._text("title.txt.j2", **_context(announcement, CUTS[0])))
        embed = {
            "title": title,
            "url": announcement.incident_url,
            "color": _colour(announcement),
            "description": _fit(
                lambda cut: self._text(
                    f"{announcement.purpose}.md.j2", **_context(announcement, cut), title=title
                )
            ),
        }
        rows = self._rows(announcement)
        return _dumps(message(content, embeds=[embed], components=rows, mention_users=mentions))

    def render_digest(self, digest: Digest) -> str:
        title = _title(digest_title(self._t, digest))
        description = _fit(lambda cut: self._text("digest.md.j2", digest=digest, title=title))
        embed = {"title": title, "url": f"{digest.base_url}/", "color": _GREY, "description": description}
        return _dumps(message(embeds=[embed]))

    async def send(self, body: str) -> str | None:
        return await self.rest.create_message(self.config.channel_id, json.loads(body))

    async def update(self, handle: str, body: str) -> None:
        await self.rest.edit_message(self.config.channel_id, handle, json.loads(body))

    async def edit_clicked(self, token: str, body: str) -> None:
        """Edit the message a click came from, through the interaction's token (15 minutes; no bot rate limit)."""
        await self.rest.edit_original(token, json.loads(body))

    def render_reply(self, reply: Reply) -> str:
        return self._replies.render(reply)

    async def reply(self, reply_to: Mapping[str, str], body: str) -> None:
        """Edit the command's "thinking…" answer through its token while it lives; past that, or when Discord no
        longer knows the token (404), post the reply in the channel the command was run in, as the bot."""
        sent = json.loads(body)
        token = reply_to.get("token")
        if token and self._token_lives(reply_to.get("expires")):
            try:
                await self.rest.edit_original(token, sent, application_id=reply_to.get("application_id"))
                return
            except DiscordError as refused:
                if refused.status != 404:  # 10015 unknown webhook: the token is gone, the channel is not
                    raise
        channel = reply_to.get("channel_id")
        if not channel:
            raise ChannelError("discord: the reply has no reply_to channel_id to post in", retryable=False)
        await self.rest.create_message(channel, sent)

    def _token_lives(self, expires: str | None) -> bool:
        try:
            return self._now() < float(expires or 0) - _TOKEN_MARGIN
        except ValueError:
            return False

    def _rows(self, announcement: Announcement) -> list[dict[str, Any]]:
        """A row per pending proposal (Approve, Reject, its web page) and one for Pause: at most 5 rows."""
        pause = announcement.pause_url is not None and bool(announcement.proposals)
        pending = [p for p in announcement.proposals if p.state == "pending"]
        rows = [self._decision_row(p, announcement.approval_links) for p in pending[: ROWS_LIMIT - pause]]
        if pause:
            pause_id = Button("pause", incident_id=announcement.incident.id).text()
            rows.append(row(button(self._t("pause_button"), style=SECONDARY, custom=pause_id)))
        return rows

    def _decision_row(self, proposal: ProposalRecord, links: Mapping[int, str]) -> dict[str, Any]:
        digest = proposal.argv_hash[:HASH_PREFIX]
        number = proposal.id
        label = markdown.line(f"#{number} {proposal.action_id}", 60)
        buttons = [
            button(
                f"{self._t('feishu_approve')} {label}"[:80],
                style=SUCCESS,
                custom=Button("approve", number, digest).text(),
            ),
            button(
                f"{self._t('feishu_reject')} {label}"[:80],
                style=DANGER,
                custom=Button("reject", number, digest).text(),
            ),
        ]
        if links.get(number):
            buttons.append(button(markdown.line(self._t("decide_on_web"), 80), style=LINK, url=links[number]))
        return row(*buttons)

    def _text(self, template: str, **context: Any) -> str:
        found = self._templates.get_template(f"discord/{template}")
        return found.render(md=markdown.inline, mdtext=markdown.escape, **context).strip()


def _title(text: str) -> str:
    """An embed title: Discord renders some markdown in it, so it is escaped like the rest."""
    return markdown.cut(markdown.inline(text), TITLE)


def _context(announcement: Announcement, cut: Cut) -> dict[str, Any]:
    return fitting.context(announcement, cut, _SNOWFLAKE)


def _fit(build: Callable[[Cut], str]) -> str:
    """The fullest rendering within an embed's 4,096; past the last cut, the shortest one cut to it."""
    for cut in CUTS:
        text = build(cut)
        if markdown.length(text) <= DESCRIPTION:
            return text
    return markdown.cut(build(LAST_RESORT), DESCRIPTION)


def _colour(announcement: Announcement) -> int:
    if announcement.purpose == "resolved":
        return _GREEN
    if announcement.purpose == "action" and announcement.reported is not None:
        return _ACTION_COLOURS.get(announcement.reported.state, _GREY)
    return _COLOURS.get(announcement.incident.severity, _GREY)


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
