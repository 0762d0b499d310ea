"""Durable jobs, claimed under a lease.

A job is claimable when it is pending and due, or running with an expired lease (its worker died). Jobs sharing a
`serial_key` (an alert group) run strictly in order: one is claimable only when every earlier one is finished.
Among claimable jobs, the lowest `priority` goes first, then the oldest. A worker claims only the kinds of its lane
(the model's diagnoses have workers of their own). A `dedup_key` makes enqueueing the same job again a no-op, so a
re-run of the job that enqueued it cannot double it. PostgreSQL replicas claim with `FOR UPDATE SKIP LOCKED`; SQLite has one writer, so its claim is atomic as is.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"

_CLAIMABLE = """
SELECT j.id FROM jobs j
WHERE j.state IN ('pending', 'running')
  AND ((j.state = 'pending' AND j.run_after <= :now) OR (j.state = 'running' AND j.lease_expires_at < :now))
  AND {kinds}
  AND NOT EXISTS (
    SELECT 1 FROM jobs p WHERE p.serial_key = j.serial_key AND p.id < j.id AND p.state IN ('pending', 'running'))
ORDER BY j.priority, j.id LIMIT 1
"""


@dataclass(frozen=True)
class Lane:
    """Which kinds a worker claims: `kinds`, or (when `exclude`) every kind but those."""

    kinds: frozenset[str] = frozenset()
    exclude: bool = True

    def condition(self) -> str:
        if not self.kinds:
            return "1 = 1" if self.exclude else "1 = 0"
        names = ", ".join(f"'{kind}'" for kind in sorted(self.kinds))  # kinds are the service's own constants
        return f"j.kind {'NOT IN' if self.exclude else 'IN'} ({names})"


ANY = Lane()


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class QueueStats:
    pending: int
    running: int
    failed: int
    oldest_age: float  # seconds the oldest unfinished job has waited; 0 when none


async def enqueue(
    conn: AsyncConnection,
    kind: str,
    serial_key: str,
    payload: dict[str, Any],
    *,
    now: float | None = None,
    delay: float = 0.0,
    priority: int = 0,
    dedup_key: str | None = None,
) -> bool:
    """True when the job is new; False when its `dedup_key` was enqueued before."""
    now = time.time() if now is None else now
    result = await conn.execute(
        text(
            "INSERT INTO jobs (kind, serial_key, payload, state, attempts, run_after, created_at, priority,"
            " dedup_key) VALUES (:kind, :serial, :payload, 'pending', 0, :run_after, :now, :priority, :dedup)"
            " ON CONFLICT (dedup_key) DO NOTHING"
        ),
        {
            "kind": kind,
            "serial": serial_key,
            "payload": json.dumps(payload),
            "now": now,
            "run_after": now + delay,
            "priority": priority,
            "dedup": dedup_key,
        },
    )
    return _changed(result)


async def claim(conn: AsyncConnection, owner: str, lease: float, lane: Lane = ANY) -> Job | None:
    now = time.time()
    claimable = _CLAIMABLE.format(kinds=lane.condition())
    if conn.dialect.name == "postgresql":
        claimable += " FOR UPDATE OF j SKIP LOCKED"
    row = (
        await conn.execute(
            text(
                "UPDATE jobs SET state = 'running', lease_owner = :owner, lease_expires_at = :expires,"
                f" attempts = attempts + 1 WHERE id = ({claimable}) RETURNING id, kind, payload, attempts"
            ),
            {"owner": owner, "expires": now + lease, "now": now},
        )
    ).one_or_none()
    return None if row is None else Job(row.id, row.kind, json.loads(row.payload), row.attempts)


async def renew(conn: AsyncConnection, job_id: int, owner: str, lease: float) -> bool:
    """Extend a lease this worker still holds; False when another worker has taken the job over."""
    result = await conn.execute(
        text(
            "UPDATE jobs SET lease_expires_at = :expires"
            " WHERE id = :id AND lease_owner = :owner AND state = 'running'"
        ),
        {"expires": time.time() + lease, "id": job_id, "owner": owner},
    )
    return _changed(result)


async def finish(conn: AsyncConnection, job_id: int, owner: str) -> bool:
    return await _settle(conn, job_id, owner, "state = 'done', finished_at = :now, lease_owner = NULL", {})


async def retry(conn: AsyncConnection, job_id: int, owner: str, error: str, delay: float) -> bool:
    return await _settle(
        conn,
        job_id,
        owner,
        "state = 'pending', run_after = :run_after, last_error = :error, lease_owner = NULL",
        {"run_after": time.time() + delay, "error": error},
    )


async def defer(conn: AsyncConnection, job_id: int, owner: str, delay: float) -> bool:
    """Run the job again after `delay` without counting an attempt: it waited (a rate limit), it did not fail."""
    return await _settle(
        conn,
        job_id,
        owner,
        "state = 'pending', run_after = :run_after, attempts = attempts - 1, lease_owner = NULL",
        {"run_after": time.time() + delay},
    )


async def fail(conn: AsyncConnection, job_id: int, owner: str, error: str) -> bool:
    return await _settle(
        conn,
        job_id,
        owner,
        "state = 'failed', finished_at = :now, last_error = :error, lease_owner = NULL",
        {"error": error},
    )


async def release(conn: AsyncConnection, job_id: int, owner: str) -> bool:
    """Hand a job back untouched (graceful shutdown): due at once, and the attempt does not count."""
    return await _settle(
        conn,
        job_id,
        owner,
        "state = 'pending', run_after = :now, attempts = attempts - 1, lease_owner = NULL",
        {},
    )


async def cancel(conn: AsyncConnection, dedup_key: str) -> None:
    """Drop a job not yet claimed, whose work became moot (an announcement timer once the announcement went out)."""
    await conn.execute(
        text(
            "UPDATE jobs SET state = 'done', finished_at = :now, last_error = 'cancelled'"
            " WHERE dedup_key = :key AND state = 'pending'"
        ),
        {"now": time.time(), "key": dedup_key},
    )


async def due_now(conn: AsyncConnection, dedup_key: str) -> None:
    """Make a job waiting for its time (a deferred one) due at once: what it waited for has happened."""
    await conn.execute(
        text("UPDATE jobs SET run_after = :now WHERE dedup_key = :key AND state = 'pending'"),
        {"now": time.time(), "key": dedup_key},
    )


async def stats(conn: AsyncConnection) -> QueueStats:
    rows = (
        await conn.execute(
            text(
                "SELECT state, count(*) AS n, min(created_at) AS oldest FROM jobs"
                " WHERE state <> 'done' GROUP BY state"
            )
        )
    ).all()
    by_state = {row.state: row for row in rows}
    waiting = [row.oldest for state, row in by_state.items() if state in (PENDING, RUNNING)]
    return QueueStats(
        pending=by_state[PENDING].n if PENDING in by_state else 0,
        running=by_state[RUNNING].n if RUNNING in by_state else 0,
        failed=by_state[FAILED].n if FAILED in by_state else 0,
        oldest_age=max(0.0, time.time() - min(waiting)) if waiting else 0.0,
    )


async def _settle(
    conn: AsyncConnection, job_id: int, owner: str, assignments: str, params: dict[str, Any]
) -> bool:
    result = await conn.execute(
        text(f"UPDATE jobs SET {assignments} WHERE id = :id AND lease_owner = :owner AND state = 'running'"),
        {"id": job_id, "owner": owner, "now": time.time(), **params},
    )
    return _changed(result)


def _changed(result: Any) -> bool:
    return bool(result.rowcount)
