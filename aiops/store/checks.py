"""Checks' results and whether each check is failing now (migration 0011)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from aiops.checks import Result
from aiops.i18n import from_column, to_column
from aiops.models import Text


@dataclass(frozen=True)
class Recorded:
    """One kept result of one check."""

    id: int
    check_id: str
    title: str
    severity: str
    ok: bool
    reason: Text
    value: float | None
    detail: str | None
    took: float
    checked_at: float


@dataclass(frozen=True)
class State:
    """Whether a check is failing now, since when, and the delivery that took its failure into the pipeline."""

    check_id: str
    failing: bool
    since: float
    last_result_id: int | None
    delivery_id: int | None


async def record(
    conn: AsyncConnection,
    check_id: str,
    title: str,
    severity: str,
    result: Result,
    *,
    took: float,
    at: float | None = None,
) -> int:
    """Keep one result; its id."""
    row = await conn.execute(
        text(
            "INSERT INTO check_results (check_id, title, severity, ok, reason, value, detail, took, checked_at)"
            " VALUES (:check, :title, :severity, :ok, :reason, :value, :detail, :took, :at) RETURNING id"
        ),
        {
            "check": check_id,
            "title": title,
            "severity": severity,
            "ok": result.ok,
            "reason": to_column(result.reason),
            "value": result.value,
            "detail": result.detail,
            "took": took,
            "at": time.time() if at is None else at,
        },
    )
    return int(row.scalar_one())


async def latest(conn: AsyncConnection) -> list[Recorded]:
    """Each check's last result, by check id."""
    rows = await conn.execute(
        text(
            "SELECT r.* FROM check_results r JOIN (SELECT check_id, max(id) AS id FROM check_results"
            " GROUP BY check_id) m ON m.id = r.id ORDER BY r.check_id"
        )
    )
    return [_recorded(row._mapping) for row in rows]


async def history(conn: AsyncConnection, check_id: str, *, since: float, limit: int = 500) -> list[Recorded]:
    """A check's results since `since`, newest first."""
    rows = await conn.execute(
        text(
            "SELECT * FROM check_results WHERE check_id = :check AND checked_at >= :since"
            " ORDER BY id DESC LIMIT :limit"
        ),
        {"check": check_id, "since": since, "limit": limit},
    )
    return [_recorded(row._mapping) for row in rows]


async def state(conn: AsyncConnection, check_id: str) -> State | None:
    row = (
        await conn.execute(text("SELECT * FROM check_states WHERE check_id = :check"), {"check": check_id})
    ).one_or_none()
    return None if row is None else _state(row._mapping)


async def states(conn: AsyncConnection) -> list[State]:
    rows = await conn.execute(text("SELECT * FROM check_states ORDER BY check_id"))
    return [_state(row._mapping) for row in rows]


async def set_state(
    conn: AsyncConnection,
    check_id: str,
    *,
    failing: bool,
    since: float,
    last_result_id: int,
    delivery_id: int | None,
) -> None:
    """Record whether the check is failing now (an upsert: one row per check)."""
    params = {
        "check": check_id,
        "failing": failing,
        "since": since,
        "result": last_result_id,
        "delivery": delivery_id,
    }
    changed = await conn.execute(
        text(
            "UPDATE check_states SET failing = :failing, since = :since, last_result_id = :result,"
            " delivery_id = :delivery WHERE check_id = :check"
        ),
        params,
    )
    if not changed.rowcount:
        await conn.execute(
            text(
                "INSERT INTO check_states (check_id, failing, since, last_result_id, delivery_id)"
                " VALUES (:check, :failing, :since, :result, :delivery)"
            ),
            params,
        )


def _recorded(row: Any) -> Recorded:
    return Recorded(
        id=int(row["id"]),
        check_id=row["check_id"],
        title=row["title"],
        severity=row["severity"],
        ok=bool(row["ok"]),
        reason=from_column(row["reason"]) or "",
        value=row["value"],
        detail=row["detail"],
        took=float(row["took"]),
        checked_at=float(row["checked_at"]),
    )


def _state(row: Any) -> State:
    return State(
        check_id=row["check_id"],
        failing=bool(row["failing"]),
        since=float(row["since"]),
        last_result_id=row["last_result_id"],
        delivery_id=row["delivery_id"],
    )
