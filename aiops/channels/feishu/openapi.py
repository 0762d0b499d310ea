"""Sending and editing cards through Feishu's Open API, and what its answers mean for a retry.

Over the channel's httpx client: the tenant access token (`auth/v3/tenant_access_token/internal`), kept until five
minutes before it expires; message create, patch and reply; and the bot's own open_id (`bot/v3/info`), asked once,
which tells a message that @mentions the bot from one that mentions someone else. lark-oapi's REST client is not used for them:
it opens a new `httpx.AsyncClient()` per call and fetches its token with a blocking `requests` call, and neither
takes a proxy other than the environment's, so `channels.feishu.proxy` could not apply to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from aiops.channels import ChannelError

if TYPE_CHECKING:  # the package imports this module
    from aiops.channels.feishu import FeishuConfig

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
MESSAGES_PATH = "/open-apis/im/v1/messages"
BOT_INFO_PATH = "/open-apis/bot/v3/info"
# 99991400 "request trigger frequency limit": HTTP 429 with x-ogw-ratelimit-reset; 230020, the limit of messages to
# one chat (5 per second, shared by the chat's bots); 11232, the tenant's message service throttled.
RATE_LIMITED = {99991400, 230020, 11232}
TOKEN_REJECTED = {99991661, 99991663, 99991668}  # the tenant access token is missing, invalid or expired
# What an operator can do about the errors a misconfiguration causes.
_HINTS = {
    10003: "check channels.feishu.app_id",
    10014: "check channels.feishu.app_secret",
    230001: "the card or chat_id was refused as an invalid parameter",
    230002: "add the app's bot to the chat (channels.feishu.chat_id for cards)",
    230011: "the message was withdrawn: there is nothing left to reply to",
    230006: "enable the bot capability of the app (channels.feishu.app_id)",
    99991672: "grant the app the im:message scope and publish a new version of it",
}
_DEFAULT_RETRY = 1.0  # seconds, when a rate-limit answer does not say when to try again
_TOKEN_MARGIN = 300.0  # seconds before its expiry that a token is replaced


class OpenApi:
    """The Open API calls of the app bot: create a card in the chat, patch it in place, reply to a message, and
    the bot's own open_id; the token they share."""

    def __init__(
        self, config: FeishuConfig, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._http = http
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (token, when to replace it, on `clock`)
        self._fetching = asyncio.Lock()
        self._bot_open_id: str | None = None

    async def create(self, card: str) -> str:
        """Post the card to the chat; returns its message_id, the handle `patch` edits."""
        chat_id = self._config.chat_id
        body = {
            "receive_id": chat_id,
            "msg_type": "interactive",
            "content": card,
            # Feishu sends one message per uuid (per hour), so a retry after a lost answer does not post twice.
            "uuid": hashlib.sha256(f"{chat_id}\n{card}".encode()).hexdigest()[:50],
        }
        answer = await self._call("POST", MESSAGES_PATH, body, {"receive_id_type": "chat_id"})
        data = answer.get("data")
        message_id = data.get("message_id") if isinstance(data, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise ChannelError("feishu: the answer to message create has no message_id", retryable=False)
        return message_id

    async def patch(self, message_id: str, card: str) -> None:
        """Replace the card behind `message_id` (cards can be edited for 14 days after they are sent)."""
        await self._call("PATCH", f"{MESSAGES_PATH}/{message_id}", {"content": card})

    async def reply(self, message_id: str, card: str, *, in_thread: bool) -> None:
        """Answer the message `message_id` with the card, in its thread when `in_thread`."""
        body = {
            "msg_type": "interactive",
            "content": card,
            "reply_in_thread": in_thread,
            # A retry after a lost answer posts nothing new; another answer to the same message still goes out.
            "uuid": hashlib.sha256(f"{message_id}\n{card}".encode()).hexdigest()[:50],
        }
        await self._call("POST", f"{MESSAGES_PATH}/{urllib.parse.quote(message_id, safe='')}/reply", body)

    async def bot_open_id(self) -> str:
        """The app's bot's own open_id, asked once and kept: it does not change for the life of the app."""
        if self._bot_open_id is None:
            answer = await self._call("GET", BOT_INFO_PATH)
            bot = answer.get("bot")
            open_id = bot.get("open_id") if isinstance(bot, dict) else None
            if not isinstance(open_id, str) or not open_id:
                raise ChannelError(
                    "feishu: the answer to bot/v3/info has no bot.open_id; set channels.feishu.bot_open_id",
                    retryable=False,
                )
            self._bot_open_id = open_id
        return self._bot_open_id

    async def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        token = await self._tenant_token()
        response = await self._send(method, path, body, params, {"Authorization": f"Bearer {token}"})
        answer = _json(response)
        if response.is_success and answer is not None and answer.get("code") == 0:
            return answer
        raise self._failure(response, answer)

    async def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method,
                self._config.domain + path,
                params=params,
                content=None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8"),
                headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
                timeout=self._config.timeout,
            )
        except httpx.TransportError as error:
            # The error's text never carries the token (a header) or the secret (the token request's body).
            raise ChannelError(f"feishu: {type(error).__name__}: {error}", retryable=True) from None

    async def _tenant_token(self) -> str:
        """The app's tenant access token, fetched when there is none or the one kept is about to expire."""
        async with self._fetching:
            if self._token is not None and self._clock() < self._token[1]:
                return self._token[0]
            credentials = {
                "app_id": self._config.app_id,
                "app_secret": self._config.app_secret.get_secret_value(),
            }
            response = await self._send("POST", TOKEN_PATH, credentials)
            answer = _json(response)
            token = (answer or {}).get("tenant_access_token")
            expire = (answer or {}).get("expire")
            if answer is None or response.status_code >= 500 or answer.get("code") is None:
                raise ChannelError(
                    f"feishu: the tenant access token could not be fetched: HTTP {response.status_code}"
                    + ("" if answer is not None else " without a JSON answer"),
                    retryable=True,
                )
            if answer.get("code") != 0 or not isinstance(token, str) or not isinstance(expire, int | float):
                raise _token_failure(answer.get("code"), answer.get("msg"))
            self._token = (token, self._clock() + max(float(expire) - _TOKEN_MARGIN, float(expire) / 2))
            return token

    def _failure(self, response: httpx.Response, answer: Mapping[str, Any] | None) -> ChannelError:
        status = response.status_code
        code = _code(answer)
        msg = str((answer or {}).get("msg") or "") if answer is not None else "without a JSON answer"
        where = f"feishu: HTTP {status}, code {code}: {msg} (log_id {response.headers.get('x-tt-logid', '')})"
        if status == 429 or code in RATE_LIMITED:
            return ChannelError(where, retryable=True, retry_after=_reset(response.headers))
        if code in TOKEN_REJECTED:
            self._token = None  # the next message fetches a new one
            return ChannelError(f"{where}; check channels.feishu.app_id and app_secret", retryable=False)
        if status >= 500 or answer is None:  # no JSON at all: a gateway's or a proxy's page
            return ChannelError(where, retryable=True)
        return ChannelError(_hinted(where, code), retryable=False)


def _token_failure(code: Any, msg: Any) -> ChannelError:
    where = f"feishu: the tenant access token was refused: code {code}: {msg}"
    if code in RATE_LIMITED:
        return ChannelError(where, retryable=True, retry_after=_DEFAULT_RETRY)
    hint = _HINTS.get(code, "check channels.feishu.app_id and channels.feishu.app_secret")
    return ChannelError(f"{where}; {hint}", retryable=False)


def _code(answer: Mapping[str, Any] | None) -> int:
    try:
        return int((answer or {}).get("code") or 0)
    except (TypeError, ValueError):
        return 0


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _hinted(message: str, code: int) -> str:
    hint = _HINTS.get(code)
    return f"{message}; {hint}" if hint else message


def _reset(headers: httpx.Headers) -> float:
    """Seconds until the rate-limit window resets, from `x-ogw-ratelimit-reset` (or Retry-After)."""
    for name in ("x-ogw-ratelimit-reset", "retry-after"):
        try:
            return max(float(headers[name]), 0.0) or _DEFAULT_RETRY
        except (KeyError, ValueError):
            continue
    return _DEFAULT_RETRY
