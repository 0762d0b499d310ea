"""The state of one delivery's triage between its jobs: stored, announced (once), diagnosed by the model."""

from __future__ import annotations

import time
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from aiops.store.codec import loads

_DOCUMENTS = ("runbook", "evidence", "diagnosis", "proposals", "errors")
Claim = Literal["first", "again"]


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


async def claim_announcement(conn: AsyncConnection, delivery_id: int, who: str) -> Claim | None:
    """ "first" when `who` is the first to announce this delivery, "again" when `who` did and is being re-run after
    a crash (the announcement's notifications are idempotent, so finishing it again sends nothing twice), None when
    someone else has."""
    now = time.time()
    row = (
        await conn.execute(
            text(
                "UPDATE triages SET announced_by = :who, announced_at = COALESCE(announced_at, :now)"
                " WHERE delivery_id = :id AND (announced_by IS NULL OR announced_by = :who) RETURNING announced_at"
            ),
            {"who": who, "id": delivery_id, "now": now},
        )
    ).first()
    if row is None:
        return None
    return "first" if row.announced_at == now else "again"


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
