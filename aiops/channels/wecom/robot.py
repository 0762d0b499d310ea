"""Sending through a WeCom group robot (群机器人, now 消息推送): `POST /cgi-bin/webhook/send?key=KEY`.

The key is the robot's only credential, so it never appears in an error. The robot takes at most 20 messages a
minute (WeCom's "群机器人配置说明", 91770). Past that it answers 45009 and drops the message, so `Pacer` keeps each
robot under the limit on this side. Markdown is limited to 4,096 bytes (text to 2,048); a longer one is refused with 40058. Every
refusal comes back as HTTP 200 with an `errcode`, read as for the app (`errors`). A robot cannot receive clicks:
its cards carry links, to the web approval page.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from aiops.channels import ChannelError
from aiops.channels.wecom.api import BASE_URL, answer_of, errcode_of
from aiops.channels.wecom.errors import RATE_LIMITED, WeComError, refusal
from aiops.channels.wecom.markdown import size

SEND_PATH = "/cgi-bin/webhook/send"
MARKDOWN_LIMIT = 4096  # bytes
LIMITS = {"markdown": MARKDOWN_LIMIT, "markdown_v2": MARKDOWN_LIMIT, "text": 2048}  # bytes of `content`
PER_MINUTE = 20
WINDOW = 60.0  # seconds


class Pacer:
    """At most `per_minute` sends in any `window` seconds, for one robot. `acquire` waits for a free slot when
    one opens within `max_wait`, and otherwise raises a retryable error saying when to try again."""

    def __init__(
        self,
        per_minute: int = PER_MINUTE,
        *,
        window: float = WINDOW,
        max_wait: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._limit, self._window, self._max_wait = per_minute, window, max_wait
        self._clock, self._sleep = clock, sleep
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            wait = self._wait()
            if wait > self._max_wait:
                raise ChannelError(
                    f"wecom robot: {self._limit} messages a minute sent already",
                    retryable=True,
                    retry_after=wait,
                )
            if wait > 0:
                await self._sleep(wait)
            self._sent.append(self._clock())

    def block(self, seconds: float) -> None:
        """Send nothing for `seconds`: the robot said 45009, so its count is not what this side thought."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def _wait(self) -> float:
        now = self._clock()
        while self._sent and self._sent[0] <= now - self._window:
            self._sent.popleft()
        full = self._sent[0] + self._window - now if len(self._sent) >= self._limit else 0.0
        return max(full, self._blocked_until - now, 0.0)


def markdown_message(content: str) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": content}}


async def send(
    http: httpx.AsyncClient,
    key: str,
    message: dict[str, Any],
    *,
    pacer: Pacer,
    base_url: str = BASE_URL,
    time_limit: float = 10.0,
) -> None:
    """Post `message` (see `markdown_message`) through the robot whose webhook key is `key`, paced by `pacer` (one
    per robot). Errors are `WeComError`s that say whether a retry could help."""
    where = "wecom robot"
    _check_size(message)
    await pacer.acquire()
    content = json.dumps(message, ensure_ascii=False).encode("utf-8")
    try:
        response = await http.post(
            base_url.rstrip("/") + SEND_PATH,
            params={"key": key},
            content=content,
            headers={"Content-Type": "application/json; charset=utf-8"},
            timeout=time_limit,
        )
    except httpx.TransportError as error:
        # httpx's transport errors do not repeat the URL, whose query is the robot's key.
        raise WeComError(f"{where}: {type(error).__name__}: {error}", errcode=0, retryable=True) from None
    answer = answer_of(response, where)
    errcode = errcode_of(answer)
    if errcode in RATE_LIMITED:
        pacer.block(WINDOW)
    if errcode != 0:
        raise refusal(where, errcode, str(answer.get("errmsg") or ""))


def _check_size(message: dict[str, Any]) -> None:
    kind = str(message.get("msgtype"))
    if kind not in LIMITS:
        return
    content = str((message.get(kind) or {}).get("content") or "")
    if size(content) > LIMITS[kind]:
        raise WeComError(
            f"wecom robot: {kind} of {size(content)} bytes is over the robot's {LIMITS[kind]} "
            "(cut it with markdown.cut, or fit the rendering)",
            errcode=0,
            retryable=False,
        )
