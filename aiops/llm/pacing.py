"""Pacing every model call of the process together: the provider's limits, and one shared backoff.

A provider limits the account, not the call: when one diagnosis is told "too many requests" (HTTP 429, MiniMax
1002), every other one would be told the same. So a throttled answer pauses all calls until the backoff has passed,
instead of each call backing off on its own and the rest hammering on; the pause doubles while throttling goes on
and resets at the first answer that gets through. Requests per minute (`llm.rpm`) and tokens per minute
(`llm.tpm`, counted from the prompt estimate before a call and corrected by the reported usage after it) are kept
under a sliding minute, so that a storm of diagnoses is spread out rather than answered with 429s.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

WINDOW = 60.0
MAX_PAUSE = 60.0


class Pacer:
    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        backoff: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rpm = rpm
        self._tpm = tpm
        self._backoff = backoff
        self._clock = clock
        self._sleep = sleep
        self._calls: deque[tuple[float, list[int]]] = deque()  # (when, [tokens]) of the last minute's calls
        self._paused_until = 0.0
        self._throttled_in_a_row = 0
        self._turn = asyncio.Lock()  # callers wait in arrival order

    @property
    def paused_for(self) -> float:
        """Seconds until the shared backoff ends; 0 when calls may go."""
        return max(0.0, self._paused_until - self._clock())

    async def acquire(self, tokens: int) -> list[int]:
        """Wait until a call of about `tokens` may go; returns its slot, for `settle` to correct the count."""
        async with self._turn:
            # A sliding window has no event marking its end: the wait is computed from the clock.
            while (wait := self._wait(tokens)) > 0:
                await self._sleep(wait)
            slot = [tokens]
            self._calls.append((self._clock(), slot))
            return slot

    def settle(self, slot: list[int], tokens: int) -> None:
        """The call's reported usage replaces the estimate it was let through with."""
        slot[0] = tokens
        self._throttled_in_a_row = 0

    def throttled(self, retry_after: float | None) -> float:
        """A call was told to slow down: pause every call. Returns the pause."""
        self._throttled_in_a_row += 1
        doubled = self._backoff * 2 ** min(self._throttled_in_a_row - 1, 10)
        pause = min(MAX_PAUSE, retry_after if retry_after else random.uniform(doubled / 2, doubled))
        self._paused_until = max(self._paused_until, self._clock() + pause)
        return pause

    def _wait(self, tokens: int) -> float:
        now = self._clock()
        while self._calls and now - self._calls[0][0] >= WINDOW:
            self._calls.popleft()
        wait = self._paused_until - now
        if self._rpm is not None and len(self._calls) >= self._rpm:
            wait = max(wait, self._calls[len(self._calls) - self._rpm][0] + WINDOW - now)
        if self._tpm is not None and self._calls:
            wait = max(wait, self._tokens_wait(now, tokens))
        return wait

    def _tokens_wait(self, now: float, tokens: int) -> float:
        """Until enough of the last minute's tokens have aged out; a call larger than the whole budget goes
        alone, once the window is empty, rather than never."""
        assert self._tpm is not None
        spent = sum(slot[0] for _, slot in self._calls)
        if spent + tokens <= self._tpm:
            return 0.0
        for when, slot in self._calls:
            spent -= slot[0]
            if spent + tokens <= self._tpm:
                return when + WINDOW - now
        return self._calls[-1][0] + WINDOW - now
