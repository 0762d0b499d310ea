"""Pacing every model call together: requests and tokens per minute, and one backoff shared by all calls."""

from __future__ import annotations

import asyncio

import pytest

from aiops.llm.pacing import MAX_PAUSE, Pacer


class Clock:
    """A minute passes in no time: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def pacer(clock: Clock, rpm: int | None = None, tpm: int | None = None, backoff: float = 1.0) -> Pacer:
    return Pacer(rpm, tpm, backoff, clock=clock, sleep=clock.sleep)


async def test_requests_per_minute_are_kept_under_a_sliding_minute() -> None:
    clock = Clock()
    paced = pacer(clock, rpm=2)
    started = [clock.now]
    for _ in range(4):
        await paced.acquire(10)
        started.append(clock.now)
    assert [at - 1000.0 for at in started[1:]] == [0.0, 0.0, 60.0, 60.0]


async def test_tokens_per_minute_count_the_estimate_until_the_usage_corrects_it() -> None:
    clock = Clock()
    paced = pacer(clock, tpm=1000)
    first = await paced.acquire(600)
    paced.settle(first, 100)  # the answer used far fewer tokens than estimated
    await paced.acquire(600)
    assert clock.now == 1000.0  # 100 + 600 fit the minute
    await paced.acquire(600)
    assert clock.now == 1060.0  # 1300 would not: it waited for the first two to age out


async def test_a_call_larger_than_the_whole_budget_goes_alone_once_the_minute_is_empty() -> None:
    clock = Clock()
    paced = pacer(clock, tpm=1000)
    await paced.acquire(300)
    await paced.acquire(5000)
    assert clock.now == 1060.0


async def test_a_throttled_answer_pauses_every_call_and_the_pause_doubles_until_one_gets_through() -> None:
    clock = Clock()
    paced = pacer(clock, backoff=1.0)
    first = paced.throttled(None)
    second = paced.throttled(None)
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0
    assert paced.paused_for == pytest.approx(max(first, second))
    waiting = [asyncio.ensure_future(paced.acquire(10)) for _ in range(3)]
    await asyncio.gather(*waiting)
    assert clock.now == pytest.approx(1000.0 + max(first, second))  # all three waited for the one pause
    paced.settle(waiting[0].result(), 10)
    assert 0.5 <= paced.throttled(None) <= 1.0  # an answer got through: the next pause starts small again


async def test_the_providers_retry_after_is_the_pause_within_a_minute() -> None:
    clock = Clock()
    paced = pacer(clock)
    assert paced.throttled(7.0) == 7.0
    assert paced.throttled(3600.0) == MAX_PAUSE
    assert paced.paused_for == MAX_PAUSE
