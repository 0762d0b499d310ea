"""The worker pool: each job's outcome recorded once, with the next claim or alone, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.queue import Deferred, QueueConfig, WorkerPool
from aiops.store import jobs
from aiops.store.jobs import Job

QUICK = QueueConfig(workers=1, poll_interval=0.05, max_attempts=2, max_backoff=0.01)


async def enqueue(engine: AsyncEngine, *payloads: dict[str, object]) -> None:
    async with engine.begin() as conn:
        for number, payload in enumerate(payloads):
            await jobs.enqueue(conn, "work", f"group-{number}", payload)


async def states(engine: AsyncEngine) -> list[tuple[str, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT state, attempts FROM jobs ORDER BY id"))
        return [(row.state, row.attempts) for row in rows]


async def run_until(engine: AsyncEngine, handler: object, expected: list[tuple[str, int]]) -> None:
    pool = WorkerPool(engine, QUICK, {"work": handler})  # type: ignore[dict-item]
    pool.start()
    try:
        for _ in range(1000):  # at most 20 s
            if await states(engine) == expected:
                break
            await asyncio.sleep(0.02)
    finally:
        await pool.stop()
    assert await states(engine) == expected


async def test_each_outcome_is_recorded_once(engine: AsyncEngine) -> None:
    """Done, retried then failed for good, deferred without counting the attempt: one worker, one job after the
    other, each outcome recorded with the claim that follows it."""
    deferred: set[int] = set()

    async def handler(job: Job) -> None:
        if job.payload["do"] == "fail":
            raise RuntimeError("broken")
        if job.payload["do"] == "defer" and job.id not in deferred:
            deferred.add(job.id)
            raise Deferred(0.01)

    await enqueue(engine, {"do": "finish"}, {"do": "fail"}, {"do": "defer"})
    await run_until(engine, handler, [("done", 1), ("failed", 2), ("done", 1)])


async def test_the_job_running_at_shutdown_is_recorded(engine: AsyncEngine) -> None:
    """Its outcome comes after the last claim: it is recorded on its own, not left running until its lease ends."""
    started, finish = asyncio.Event(), asyncio.Event()

    async def handler(job: Job) -> None:
        started.set()
        await finish.wait()

    await enqueue(engine, {"do": "finish"}, {"do": "finish"})
    pool = WorkerPool(engine, QUICK, {"work": handler})
    pool.start()
    await asyncio.wait_for(started.wait(), 20)
    stopping = asyncio.create_task(pool.stop())
    await asyncio.sleep(0.1)  # stop() waits for the running job
    finish.set()
    await asyncio.wait_for(stopping, 20)
    assert await states(engine) == [("done", 1), ("pending", 0)]
