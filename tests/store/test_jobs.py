"""The durable queue: leases, strict order within an alert group, retries, release — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.store import jobs


async def enqueue(engine: AsyncEngine, *keys: str) -> None:
    async with engine.begin() as conn:
        for number, key in enumerate(keys):
            await jobs.enqueue(conn, "triage", key, {"n": number})


async def claim(engine: AsyncEngine, owner: str = "w1", lease: float = 60) -> jobs.Job | None:
    async with engine.begin() as conn:
        return await jobs.claim(conn, owner, lease)


async def settle(engine: AsyncEngine, change: object, *args: object) -> bool:
    async with engine.begin() as conn:
        return await change(conn, *args)  # type: ignore[operator, no-any-return]


async def test_claims_in_order_and_finishes(engine: AsyncEngine) -> None:
    await enqueue(engine, "a", "b")
    first, second = await claim(engine), await claim(engine)
    assert first is not None and second is not None
    assert (first.payload, second.payload, first.attempts) == ({"n": 0}, {"n": 1}, 1)
    assert await claim(engine) is None
    assert await settle(engine, jobs.finish, first.id, "w1")
    async with engine.connect() as conn:
        stats = await jobs.stats(conn)
    assert (stats.pending, stats.running, stats.failed) == (0, 1, 0)


async def test_one_group_runs_strictly_in_order(engine: AsyncEngine) -> None:
    await enqueue(engine, "group", "group", "other")
    first = await claim(engine)
    other = await claim(engine)
    assert first is not None and other is not None and other.payload == {"n": 2}
    assert await claim(engine) is None, "the group's second job must wait for the first"
    await settle(engine, jobs.finish, first.id, "w1")
    second = await claim(engine)
    assert second is not None and second.payload == {"n": 1}


async def test_a_failed_job_does_not_block_its_group(engine: AsyncEngine) -> None:
    await enqueue(engine, "group", "group")
    first = await claim(engine)
    assert first is not None
    assert await settle(engine, jobs.fail, first.id, "w1", "boom")
    second = await claim(engine)
    assert second is not None and second.payload == {"n": 1}
    async with engine.connect() as conn:
        assert (await jobs.stats(conn)).failed == 1


async def test_an_expired_lease_is_taken_over(engine: AsyncEngine) -> None:
    await enqueue(engine, "a")
    dead = await claim(engine, "dead-worker", lease=0.2)
    assert dead is not None
    assert await claim(engine, "w2") is None, "a live lease is respected"
    await asyncio.sleep(0.3)
    taken = await claim(engine, "w2")
    assert taken is not None and taken.id == dead.id and taken.attempts == 2
    assert not await settle(engine, jobs.finish, dead.id, "dead-worker"), (
        "the old owner can no longer settle it"
    )
    assert not await settle(engine, jobs.renew, dead.id, "dead-worker", 60.0)
    assert await settle(engine, jobs.finish, taken.id, "w2")


async def test_renewal_keeps_the_lease(engine: AsyncEngine) -> None:
    await enqueue(engine, "a")
    job = await claim(engine, lease=0.3)
    assert job is not None
    assert await settle(engine, jobs.renew, job.id, "w1", 60.0)
    await asyncio.sleep(0.4)
    assert await claim(engine, "w2") is None


async def test_retry_waits_for_its_backoff(engine: AsyncEngine) -> None:
    await enqueue(engine, "a")
    job = await claim(engine)
    assert job is not None
    assert await settle(engine, jobs.retry, job.id, "w1", "Prometheus down", 0.3)
    assert await claim(engine) is None
    await asyncio.sleep(0.4)
    again = await claim(engine)
    assert again is not None and again.attempts == 2
    async with engine.connect() as conn:
        error = await conn.execute(text("SELECT last_error FROM jobs WHERE id = :id"), {"id": job.id})
        assert error.scalar_one() == "Prometheus down"


async def test_release_hands_back_without_counting(engine: AsyncEngine) -> None:
    await enqueue(engine, "a")
    job = await claim(engine, lease=600)
    assert job is not None
    assert await settle(engine, jobs.release, job.id, "w1")
    again = await claim(engine, "w2")
    assert again is not None and again.id == job.id and again.attempts == 1


async def test_concurrent_claims_never_share_a_job(engine: AsyncEngine) -> None:
    await enqueue(engine, *[f"group-{n}" for n in range(12)])
    claimed = await asyncio.gather(*(claim(engine, f"w{n}") for n in range(12)))
    ids = [job.id for job in claimed if job is not None]
    assert len(ids) == 12 and len(set(ids)) == 12
