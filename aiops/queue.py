"""The in-process worker pool that runs durable jobs from the store.

Retries with backoff, lease renewal and graceful release live here once; a job handler only raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aiops.store import jobs
from aiops.store.jobs import Job, Lane
from aiops.units import Seconds

log = logging.getLogger("aiops.queue")
Handler = Callable[[Job], Awaitable[None]]


@dataclass(frozen=True)
class _Outcome:
    """What became of a job run: the change of `aiops.store.jobs` that records it, with its arguments."""

    change: Callable[..., Awaitable[bool]]
    job: Job
    args: tuple[object, ...] = ()


class Deferred(Exception):
    """Raised by a handler that must wait (a rate limit, a busy host): the job runs again after `delay` seconds,
    and the wait does not count as a failed attempt."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"deferred for {delay:.1f}s")
        self.delay = delay


class QueueConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: int = Field(default=2, ge=1, le=64)
    # A job whose worker stops renewing its lease for this long is taken over by another worker or replica.
    lease: Seconds = 60.0
    poll_interval: Seconds = 1.0
    max_attempts: int = Field(default=10, ge=1)
    max_backoff: Seconds = 300.0
    # On SIGTERM, running jobs get this long to finish before they are handed back to the queue.
    shutdown_grace: Seconds = 20.0


@dataclass(frozen=True)
class Dedicated:
    """Job kinds with workers of their own (the model's diagnoses): they never take a worker from the rest, and
    the rest never wait behind them."""

    name: str
    kinds: frozenset[str]
    workers: int


@dataclass
class _Lane:
    """A lane's loops. A wake-up goes to one idle loop, not all: each one woken claims, and in a storm a claim
    that finds nothing is a store round trip taken from work that does. A wake-up with no loop idle is kept for
    the next loop that would go idle, so none is lost between a loop's empty claim and its wait."""

    name: str
    lane: Lane
    workers: int
    idle: deque[asyncio.Event] = field(default_factory=deque)
    kept: int = 0

    def wake(self) -> None:
        if self.idle:
            self.idle.popleft().set()
        else:
            self.kept = min(self.kept + 1, self.workers)

    def wake_all(self) -> None:
        while self.idle:
            self.idle.popleft().set()
        self.kept = self.workers

    async def rest(self, interval: float) -> None:
        if self.kept:
            self.kept -= 1
            return
        wakeup = asyncio.Event()
        self.idle.append(wakeup)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), interval)
        finally:
            if wakeup in self.idle:
                self.idle.remove(wakeup)


class WorkerPool:
    """`queue.workers` loops claiming every kind of job but the dedicated ones, and each dedicated lane's own
    loops; `wake(kind)` makes an idle loop of the lane that works `kind` look at once (new work was committed)."""

    def __init__(
        self,
        engine: AsyncEngine,
        config: QueueConfig,
        handlers: Mapping[str, Handler],
        dedicated: Sequence[Dedicated] = (),
    ) -> None:
        self._engine = engine
        self._config = config
        self._handlers = handlers
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        taken = frozenset(kind for lane in dedicated for kind in lane.kinds)
        self._lanes = [_Lane("worker", Lane(taken, exclude=True), config.workers)] + [
            _Lane(lane.name, Lane(lane.kinds, exclude=False), lane.workers) for lane in dedicated
        ]
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []
        self._running: dict[int, asyncio.Task[_Outcome]] = {}

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._loop(lane), name=f"{lane.name}-{n}")
            for lane in self._lanes
            for n in range(lane.workers)
        ]

    def wake(self, kind: str | None = None) -> None:
        """Wake the lane that works `kind`, or every lane."""
        for lane in self._lanes:
            if kind is None or (kind in lane.lane.kinds) != lane.lane.exclude:
                lane.wake()

    async def stop(self) -> None:
        """Stop claiming, let running jobs finish within the grace period, then hand the rest back."""
        self._stopping = True
        for lane in self._lanes:
            lane.wake_all()
        running = list(self._running.values())
        if running:
            log.info("waiting up to %.0fs for %d running job(s)", self._config.shutdown_grace, len(running))
            _done, late = await asyncio.wait(running, timeout=self._config.shutdown_grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        # The loops end by themselves once they see `_stopping`; cancelling one mid-claim could leave a claimed
        # job running until its lease expires, so only a loop that does not end promptly is cancelled.
        _ended, stuck = await asyncio.wait(self._loops, timeout=5) if self._loops else (set(), set())
        for loop in stuck:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)

    async def _loop(self, lane: _Lane) -> None:
        outcome: _Outcome | None = None
        while not self._stopping or outcome is not None:
            job = await self._settle_and_claim(lane, outcome)
            outcome = None
            if job is None:
                if self._stopping:
                    break
                await lane.rest(self._config.poll_interval)
                continue
            if self._stopping:  # claimed while shutdown began: hand it straight back
                await self._settle(_Outcome(jobs.release, job))
                break
            task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
            self._running[job.id] = task
            try:
                outcome = await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():
                    raise
            finally:
                self._running.pop(job.id, None)

    async def _settle_and_claim(self, lane: _Lane, outcome: _Outcome | None) -> Job | None:
        """Record the last job's outcome and claim the next job in one transaction: a storm's jobs pay one
        commit between them, not two. No claim once shutdown began."""
        try:
            async with self._engine.begin() as conn:
                if outcome is not None:
                    await self._record(conn, outcome)
                if self._stopping:
                    return None
                return await jobs.claim(conn, self._owner, self._config.lease, lane.lane)
        except Exception as error:  # the store is down: keep polling, never die
            log.warning("claiming a job failed: %s", error)
        if outcome is not None:  # the outcome went down with the claim's transaction: record it alone
            await self._settle(outcome)
        return None

    async def _run(self, job: Job) -> _Outcome:
        """Run the handler; what became of the job, for the loop to record (the handler never settles)."""
        heartbeat = asyncio.create_task(self._heartbeat(job))
        try:
            await self._handlers[job.kind](job)
        except asyncio.CancelledError:
            log.info("job %d handed back to the queue", job.id)
            await self._settle(_Outcome(jobs.release, job))
            raise
        except Deferred as deferred:
            return _Outcome(jobs.defer, job, (deferred.delay,))
        except Exception as error:
            return self._failed(job, error)
        else:
            return _Outcome(jobs.finish, job)
        finally:
            heartbeat.cancel()

    def _failed(self, job: Job, error: Exception) -> _Outcome:
        reason = f"{type(error).__name__}: {error}"
        if job.attempts >= self._config.max_attempts:
            log.error("job %d failed for good after %d attempts: %s", job.id, job.attempts, reason)
            return _Outcome(jobs.fail, job, (reason,))
        delay = min(self._config.max_backoff, 2.0**job.attempts) * random.uniform(0.5, 1.0)
        log.warning("job %d attempt %d failed, retrying in %.0fs: %s", job.id, job.attempts, delay, reason)
        return _Outcome(jobs.retry, job, (reason, delay))

    async def _settle(self, outcome: _Outcome) -> None:
        # If the store is down now, the lease runs out and the job is claimed again: work is delayed, not lost.
        try:
            async with self._engine.begin() as conn:
                await self._record(conn, outcome)
        except Exception as error:
            log.warning("recording the outcome of job %d failed: %s", outcome.job.id, error)

    async def _record(self, conn: AsyncConnection, outcome: _Outcome) -> None:
        if not await outcome.change(conn, outcome.job.id, self._owner, *outcome.args):
            log.warning("job %d was taken over by another worker before it was settled", outcome.job.id)

    async def _heartbeat(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self._config.lease / 3)
            try:
                async with self._engine.begin() as conn:
                    if not await jobs.renew(conn, job.id, self._owner, self._config.lease):
                        log.warning("lost the lease on job %d", job.id)
            except Exception as error:
                log.warning("renewing the lease on job %d failed: %s", job.id, error)
