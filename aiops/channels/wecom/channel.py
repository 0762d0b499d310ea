"""The WeCom self-built app (自建应用) channel: each incident is one `button_interaction` template card sent to the
app's members, edited in place, with Approve / Reject (and Pause) buttons that call back to aiops.

```yaml
channels:
  wecom:
    corp_id: ww0a1b2c3d4e5f6789
    agent_id: 1000002
    corp_secret: ${WECOM_CORP_SECRET}
    touser: [zhangsan, lisi]                # userids who receive the cards (and may click)
    # toparty: ["2"]                        # and the members of these departments
    callback_token: ${WECOM_CALLBACK_TOKEN}            # 接收消息 → Token
    encoding_aes_key: ${WECOM_ENCODING_AES_KEY}        # 接收消息 → EncodingAESKey (43 characters)
    # proxy: http://proxy.internal:3128     # then add the proxy's egress IP to the app's 企业可信IP
```

A card can be updated only with a `response_code`, each valid once within 72 hours: the send's answer brings one,
and so does every click. The channel keeps, per card, the freshest code it has not spent (in memory); an update
spends it. When none is left (spent, too old, or lost in a restart) the new card is sent as a new message instead,
and the later updates edit that one.

With the callback settings, people can also write to the app (chat, `aiops.chat`): a message to an app is one to
one, and the reply is a markdown message back to its writer (`reply_to` `{"user": userid}`; see `replies`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping

import httpx
from jinja2 import Environment
from pydantic import ConfigDict, Field, SecretStr, field_validator

from aiops.channels import Announcement, Capabilities, ChannelError, Digest, RateLimit
from aiops.channels.routing import Routing
from aiops.channels.wecom.api import (
    BASE_URL,
    AppClient,
    ResponseCode,
    ResponseCodeRefused,
    TokenCache,
    task_id,
)
from aiops.channels.wecom.card import Cards
from aiops.channels.wecom.crypto import MsgCrypt
from aiops.channels.wecom.replies import Replies
from aiops.chat import Reply
from aiops.proxy import Destination, Proxied, destination
from aiops.units import HttpUrl, Seconds


class WeComConfig(Routing, Proxied):
    """One self-built app sending cards to its members; `match` and `mentions` (from `Routing`) choose what it
    announces."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="wecom", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    corp_id: str = Field(min_length=1)  # 我的企业 → 企业信息 → 企业ID (ww…)
    agent_id: int = Field(gt=0)  # 应用管理 → the app → AgentId
    corp_secret: SecretStr  # 应用管理 → the app → Secret
    touser: list[str] = Field(min_length=1)  # userids the cards go to
    toparty: list[str] = Field(default_factory=list)  # department ids, whose members get the cards too
    # The app's 接收消息 settings, for the callbacks at POST /callbacks/wecom; without them, no clicks.
    callback_token: SecretStr | None = None
    encoding_aes_key: SecretStr | None = None
    base_url: HttpUrl = BASE_URL
    timeout: Seconds = 10.0

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) != 43:
            raise ValueError("must be the app's EncodingAESKey: 43 characters, from 接收消息 → 设置API接收")
        return key

    @property
    def accepts_callbacks(self) -> bool:
        return self.callback_token is not None and self.encoding_aes_key is not None

    def destinations(self, where: str) -> list[Destination]:
        return destination(where, self, self.base_url)


# WeCom drops, silently, what passes 30 messages a minute to one member: every card goes to all of `touser`.
CAPABILITIES = Capabilities(edits=True, buttons="callbacks", max_bytes=None, limits=RateLimit(per_minute=30))


class WeComChannel:
    """The `Channel` for one WeCom self-built app. A message's body is the JSON of its card, without task_id; its
    handle is the card's task_id. It is `Replying` too: a chat reply's body is markdown."""

    limits = CAPABILITIES.limits
    immediate = False
    results_on_card = False

    def __init__(
        self,
        config: WeComConfig,
        templates: Environment,
        http: httpx.AsyncClient,
        *,
        tokens: TokenCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = config.name
        self.config = config
        self.routing: Routing = config
        self._cards = Cards(templates)
        self._replies = Replies(templates)
        self._api = AppClient(
            http,
            corp_id=config.corp_id,
            corp_secret=config.corp_secret.get_secret_value(),
            agent_id=config.agent_id,
            base_url=config.base_url,
            tokens=tokens,
            time_limit=config.timeout,
            clock=clock,
        )
        self._clock = clock
        self._codes: dict[str, list[ResponseCode]] = {}  # task_id → its unspent response codes, freshest last
        self._moved: dict[str, str] = {}  # task_id → the card that replaced it, when it could not be edited
        self.crypt = (
            MsgCrypt(
                config.callback_token.get_secret_value(),
                config.encoding_aes_key.get_secret_value(),
                config.corp_id,
            )
            if config.callback_token is not None and config.encoding_aes_key is not None
            else None
        )

    def render(self, announcement: Announcement) -> str:
        return self._cards.announcement(announcement)

    def render_digest(self, digest: Digest) -> str:
        return self._cards.digest(digest)

    def render_reply(self, reply: Reply) -> str:
        return self._replies.render(reply)

    async def reply(self, reply_to: Mapping[str, str], body: str) -> None:
        """Send the reply's markdown to the person who wrote (`reply_to["user"]`, a userid)."""
        user = reply_to.get("user")
        if not user:
            raise ChannelError("wecom: the reply has no reply_to user (the writer's userid)", retryable=False)
        await self._api.send_markdown([user], body)

    async def send(self, body: str) -> str | None:
        task = task_id("aiops", int(self._clock() * 1000), secrets.token_hex(4))
        await self._send(task, body)
        return task

    async def update(self, handle: str, body: str) -> None:
        """Edit the card with its freshest unspent response code, then the older ones (each works once within
        72 h: the send brought one and every click another); with none left, send it as a new card."""
        task = self._moved.get(handle, handle)
        while self._codes.get(task):
            code = self._codes[task][-1]
            try:
                await self._api.update_template_card(
                    self.config.touser, code, card=_card(task, body), partyids=self.config.toparty
                )
                self._spend(task, code)
                return
            except ResponseCodeRefused:
                # Spent or too old: try the next. (A retryable error leaves the code, which WeCom did not take,
                # for the retry.)
                self._spend(task, code)
        replacement = task_id("aiops", int(self._clock() * 1000), secrets.token_hex(4))
        await self._send(replacement, body)
        self._moved[handle] = replacement

    def keep_response_code(self, task: str, code: ResponseCode) -> None:
        """A click's fresh code: the next update of the card spends it first."""
        self._codes.setdefault(task, []).append(code)

    def _spend(self, task: str, code: ResponseCode) -> None:
        codes = self._codes.get(task, [])
        if code in codes:
            codes.remove(code)
        if not codes:
            self._codes.pop(task, None)

    async def _send(self, task: str, body: str) -> None:
        sent = await self._api.send_template_card(
            self.config.touser, _card(task, body), toparty=self.config.toparty
        )
        self._codes[task] = [sent.response_code]


def _card(task: str, body: str) -> dict[str, object]:
    try:
        card = json.loads(body)
    except ValueError:
        raise ChannelError("wecom: the message body is not a rendered card", retryable=False) from None
    return {**card, "task_id": task}
