"""Sending and editing cards through Feishu's Open API with lark-oapi, and what its answers mean for a retry.

lark-oapi has no type hints, so everything it returns is read here and nowhere else. Its async calls (`acreate`,
`apatch`) still fetch the tenant access token with a blocking `requests` call when the cached one is missing or
due for renewal; `_tenant_token` does that fetch in a worker thread first, so the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import lark_oapi as lark  # type: ignore[import-untyped]  # lark-oapi ships no type hints
from lark_oapi.api.im.v1 import (  # type: ignore[import-untyped]
    CreateMessageRequest,
    CreateMessageRequestBody,
    PatchMessageRequest,
    PatchMessageRequestBody,
)
from lark_oapi.core.exception import ObtainAccessTokenException  # type: ignore[import-untyped]
from lark_oapi.core.token import TokenManager  # type: ignore[import-untyped]

from aiops.channels import ChannelError
from aiops.channels.feishu import FeishuConfig

RATE_LIMITED = {99991400}  # "request trigger frequency limit": HTTP 429 with x-ogw-ratelimit-reset
TOKEN_REJECTED = {99991661, 99991663, 99991668}  # the tenant access token is missing, invalid or expired
# What an operator can do about the errors a misconfiguration causes.
_HINTS = {
    10003: "check channels.feishu.app_id",
    10014: "check channels.feishu.app_secret",
    230001: "the card or chat_id was refused as an invalid parameter",
    230002: "add the app's bot to the group channels.feishu.chat_id",
    230006: "enable the bot capability of the app (channels.feishu.app_id)",
    99991672: "grant the app the im:message scope and publish a new version of it",
}
_DEFAULT_RETRY = 1.0  # seconds, when a rate-limit answer does not say when to try again


class OpenApi:
    """The two Open API calls a card needs: create it in the chat, then patch it in place."""

    def __init__(self, config: FeishuConfig) -> None:
        self._chat_id = config.chat_id
        self._client = (
            lark.Client.builder()
            .app_id(config.app_id)
            .app_secret(config.app_secret.get_secret_value())
            .domain(config.domain)
            .timeout(config.timeout)
            .log_level(lark.LogLevel.ERROR)
            .build()
        )

    async def create(self, card: str) -> str:
        """Post the card to the chat; returns its message_id, the handle `patch` edits."""
        body = (
            CreateMessageRequestBody.builder()
            .receive_id(self._chat_id)
            .msg_type("interactive")
            .content(card)
            # Feishu sends one message per uuid (per hour), so a retry after a lost answer does not post twice.
            .uuid(hashlib.sha256(f"{self._chat_id}\n{card}".encode()).hexdigest()[:50])
            .build()
        )
        request = CreateMessageRequest.builder().receive_id_type("chat_id").request_body(body).build()
        response = await self._call(self._client.im.v1.message.acreate, request)
        message_id = getattr(response.data, "message_id", None)
        if not isinstance(message_id, str) or not message_id:
            raise ChannelError("feishu: the answer to message create has no message_id", retryable=False)
        return message_id

    async def patch(self, message_id: str, card: str) -> None:
        """Replace the card behind `message_id` (cards can be edited for 14 days after they are sent)."""
        body = PatchMessageRequestBody.builder().content(card).build()
        request = PatchMessageRequest.builder().message_id(message_id).request_body(body).build()
        await self._call(self._client.im.v1.message.apatch, request)

    async def _call(self, method: Any, request: Any) -> Any:
        await self._tenant_token()
        try:
            response = await method(request)
        # ValueError: an answer that is not JSON, such as a gateway's error page
        except (httpx.HTTPError, ValueError) as error:
            raise ChannelError(f"feishu: {type(error).__name__}: {error}", retryable=True) from None
        if not response.success():
            raise self._failure(response)
        return response

    async def _tenant_token(self) -> None:
        try:
            await asyncio.to_thread(TokenManager.get_self_tenant_token, self._client.config)
        except ObtainAccessTokenException as error:
            raise _token_failure(error.code, error.msg) from None
        except (OSError, ValueError) as error:  # requests' errors are OSErrors; ValueError: not JSON
            raise ChannelError(
                f"feishu: the tenant access token could not be fetched: {type(error).__name__}: {error}",
                retryable=True,
            ) from None

    def _failure(self, response: Any) -> ChannelError:
        raw = response.raw
        status = int(raw.status_code or 0) if raw is not None else 0
        headers = {str(k).lower(): str(v) for k, v in (raw.headers or {}).items()} if raw is not None else {}
        code, msg = int(response.code or 0), str(response.msg or "")
        where = f"feishu: HTTP {status}, code {code}: {msg} (log_id {response.get_log_id()})"
        if status == 429 or code in RATE_LIMITED:
            return ChannelError(where, retryable=True, retry_after=_reset(headers))
        if code in TOKEN_REJECTED:
            self._forget_token()
            return ChannelError(f"{where}; check channels.feishu.app_id and app_secret", retryable=False)
        if status >= 500:
            return ChannelError(where, retryable=True)
        return ChannelError(_hinted(where, code), retryable=False)

    def _forget_token(self) -> None:
        """Drop the cached tenant token Feishu refused, so the next message fetches a new one. The key is the one
        lark-oapi's TokenManager uses for a self-built app."""
        TokenManager.cache.set(f"self_tenant_token:{self._client.config.app_id}", "", 0)


def _token_failure(code: Any, msg: Any) -> ChannelError:
    where = f"feishu: the tenant access token was refused: code {code}: {msg}"
    if code in RATE_LIMITED:
        return ChannelError(where, retryable=True, retry_after=_DEFAULT_RETRY)
    if code is None:  # no code at all: not Feishu's answer (a gateway error page)
        return ChannelError(where, retryable=True)
    hint = _HINTS.get(code, "check channels.feishu.app_id and channels.feishu.app_secret")
    return ChannelError(f"{where}; {hint}", retryable=False)


def _hinted(message: str, code: int) -> str:
    hint = _HINTS.get(code)
    return f"{message}; {hint}" if hint else message


def _reset(headers: dict[str, str]) -> float:
    """Seconds until the rate-limit window resets, from `x-ogw-ratelimit-reset` (or Retry-After)."""
    for name in ("x-ogw-ratelimit-reset", "retry-after"):
        try:
            return max(float(headers[name]), 0.0) or _DEFAULT_RETRY
        except (KeyError, ValueError):
            continue
    return _DEFAULT_RETRY
