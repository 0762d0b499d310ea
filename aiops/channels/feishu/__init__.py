"""The Feishu (Lark) app bot: each incident is one interactive card (card JSON 2.0) in a group chat, edited in place
as the incident changes, with Approve / Reject buttons for the actions waiting for an approval. People ask it
questions in chat — in a card's thread, by @mentioning it in a group, or in a direct message — and it answers each
with a card replying to the question (`reply.py`).

Cards are sent and edited through the Open API (`openapi.py`, over httpx, through `proxy` when it is set); clicks
come back to `POST /callbacks/feishu` (aiops/web/callbacks.py, verified by `callback.py`) or, with
`callbacks: long_connection`, over a WebSocket that lark-oapi opens to Feishu (`longconn.py`), never through a
proxy; either way `clicks.py` decides them. Chat messages (the `im.message.receive_v1` event, which the app must
subscribe to) come the same two ways and are read by `messages.py`.

```yaml
channels:
  feishu:
    app_id: cli_a1b2c3
    app_secret: ${FEISHU_APP_SECRET}
    chat_id: oc_0123456789abcdef
    encrypt_key: ${FEISHU_ENCRYPT_KEY}      # for POST /callbacks/feishu
    # callbacks: long_connection            # or receive clicks over a connection aiops opens to Feishu
    # proxy: socks5h://proxy.example.com:1080   # for the Open API (the long connection cannot use one)
    # bot_open_id: ou_…                     # the bot's own open_id; asked of GET /open-apis/bot/v3/info if unset
```
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Literal

import httpx
from jinja2 import Environment
from pydantic import ConfigDict, Field, SecretStr, field_validator

from aiops.channels import Announcement, Capabilities, ChannelError, Digest, RateLimit
from aiops.channels.feishu.card import MAX_BYTES, Cards
from aiops.channels.feishu.openapi import OpenApi
from aiops.channels.feishu.reply import Replies
from aiops.channels.routing import Routing
from aiops.chat import Reply
from aiops.proxy import Destination, Proxied, destination, origin
from aiops.units import Seconds

FEISHU_DOMAIN = "https://open.feishu.cn"
LARK_DOMAIN = "https://open.larksuite.com"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
# lark-oapi 1.7.5 opens the long connection with `websockets.connect(…, proxy=None)` and offers no way to give one.
LONG_CONNECTION_ROUTE = (
    "direct: lark-oapi cannot open it through a proxy (it asks for its URL with requests, which follows HTTPS_PROXY "
    "and NO_PROXY of the environment, and opens the WebSocket without one)"
)


class FeishuConfig(Routing, Proxied):
    """One app bot posting to one group chat; `match` and `mentions` (from `Routing`) choose what it announces.

    `bot_open_id` is the bot's own open_id (ou_…), which tells a group message that @mentions aiops from one that
    mentions someone else; unset, it is asked of Feishu (`GET /open-apis/bot/v3/info`) the first time a message
    mentions anyone, and kept.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="feishu", min_length=1)
    app_id: str = Field(min_length=1)
    app_secret: SecretStr
    chat_id: str = Field(min_length=1)  # the group's chat_id (oc_…), which the app's bot must have joined
    domain: str = FEISHU_DOMAIN  # https://open.larksuite.com for Lark
    # How Feishu's requests to /callbacks/feishu are authenticated: with an encrypt key, by signature and
    # encryption; without one, by the verification token alone. Both are in the app's "Events & callbacks" page.
    verification_token: SecretStr | None = None
    encrypt_key: SecretStr | None = None
    # Where card clicks arrive: "http" at POST /callbacks/feishu (the app's request URL must reach aiops), or
    # "long_connection", a WebSocket aiops opens to Feishu (self-built apps only; nothing to expose).
    callbacks: Literal["http", "long_connection"] = "http"
    timeout: Seconds = 10.0
    bot_open_id: str | None = Field(default=None, pattern=r"^[!-~]{1,256}$")

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        """The rule lark-oapi applies when the client is built, checked when the configuration is read."""
        parts = urllib.parse.urlsplit(value)
        loopback = parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK
        if not (parts.scheme == "https" or loopback) or not parts.hostname:
            raise ValueError(
                f"{value!r} must be https://host[:port] ({FEISHU_DOMAIN}, or {LARK_DOMAIN} for Lark); "
                "http:// is accepted only for 127.0.0.1, localhost and ::1"
            )
        if parts.username or parts.password or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{value!r} must be an origin only, without a path, query or credentials")
        return value.rstrip("/")

    @property
    def accepts_callbacks(self) -> bool:
        return self.encrypt_key is not None or self.verification_token is not None

    def destinations(self, where: str) -> list[Destination]:
        """The Open API, and the long connection when clicks come over it (for `aiops check`)."""
        found = destination(where, self, self.domain)
        if self.callbacks == "long_connection":
            found.append(Destination(f"{where} long connection", origin(self.domain), LONG_CONNECTION_ROUTE))
        return found


CAPABILITIES = Capabilities(
    edits=True, buttons="callbacks", max_bytes=MAX_BYTES, limits=RateLimit(per_minute=100, per_second=5)
)


class FeishuChannel:
    """The `Channel` for one Feishu app bot and group chat."""

    limits = CAPABILITIES.limits
    immediate = False
    results_on_card = False

    def __init__(self, config: FeishuConfig, templates: Environment, http: httpx.AsyncClient) -> None:
        self.name = config.name
        self.routing: Routing = config
        self._cards = Cards(templates)
        self._replies = Replies(templates)
        self._api = OpenApi(config, http)
        self._bot_open_id = config.bot_open_id

    def render(self, announcement: Announcement) -> str:
        return self._cards.announcement(announcement)

    def render_digest(self, digest: Digest) -> str:
        return self._cards.digest(digest)

    async def send(self, body: str) -> str | None:
        return await self._api.create(body)

    async def update(self, handle: str, body: str) -> None:
        await self._api.patch(handle, body)

    def render_reply(self, reply: Reply) -> str:
        return self._replies.reply(reply)

    async def reply(self, reply_to: Mapping[str, str], body: str) -> None:
        """Answer the message `reply_to["message_id"]`, in its thread unless `reply_to["in_thread"]` is "false"
        (a direct message: the answer quotes it instead)."""
        message_id = reply_to.get("message_id")
        if not message_id:
            raise ChannelError("feishu: reply_to has no message_id to reply to", retryable=False)
        await self._api.reply(message_id, body, in_thread=reply_to.get("in_thread") != "false")

    async def bot_open_id(self) -> str:
        """The bot's own open_id: channels.feishu.bot_open_id, else Feishu's answer (asked once)."""
        return self._bot_open_id or await self._api.bot_open_id()
