"""The state of one delivery's triage between its jobs: stored, announced (once), diagnosed by the model."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from aiops.store.codec import loads

_DOCUMENTS = ("runbook", "evidence", "diagnosis", "proposals", "errors")


async def of_delivery(conn: AsyncConnection, delivery_id: int) -> dict[str, Any] | None:
    row = (
        await conn.execute(text("SELECT * FROM triages WHERE delivery_id = :id"), {"id": delivery_id})
    ).one_or_none()
    if row is None:
        return None
    found = row._mapping
    return {
        **{name: loads(found[name]) for name in _DOCUMENTS},
        "announced_by": found["announced_by"],
        "diagnosed_at": found["diagnosed_at"],
    }


async def claim_announcement(conn: AsyncConnection, delivery_id: int, who: str) -> bool:
    """True when `who` is to announce this delivery: nobody has, or `who` did and is being re-run after a crash
    (the announcement's notifications are idempotent, so finishing it again sends nothing twice)."""
    result = await conn.execute(
        text(
            "UPDATE triages SET announced_by = :who, announced_at = COALESCE(announced_at, :now)"
            " WHERE delivery_id = :id AND (announced_by IS NULL OR announced_by = :who)"
        ),
        {"who": who, "id": delivery_id, "now": time.time()},
    )
    return bool(result.rowcount)


async def announced(conn: AsyncConnection, delivery_id: int) -> bool:
    """Whether the delivery's announcement was claimed already (by anyone, before a re-run)."""
    row = await conn.execute(
        text("SELECT announced_at FROM triages WHERE delivery_id = :id"), {"id": delivery_id}
    )
    return row.scalar_one_or_none() is not None


async def mark_diagnosed(conn: AsyncConnection, delivery_id: int) -> None:
    await conn.execute(
        text("UPDATE triages SET diagnosed_at = COALESCE(diagnosed_at, :now) WHERE delivery_id = :id"),
        {"now": time.time(), "id": delivery_id},
    )


async def unannounced(conn: AsyncConnection, incident_id: int) -> list[int]:
    """Deliveries of the incident whose announcement is still waiting for its diagnosis."""
    rows = await conn.execute(
        text(
            "SELECT delivery_id FROM triages WHERE incident_id = :id AND announced_by IS NULL ORDER BY delivery_id"
        ),
        {"id": incident_id},
    )
    return [int(row.delivery_id) for row in rows]
