"""Deliveries: each distinct Alertmanager notification, stored verbatim before the webhook answers."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from aiops.models import AlertGroup
from aiops.store import jobs
from aiops.store.codec import to_epoch

TRIAGE = "triage"


@dataclass(frozen=True)
class Receipt:
    delivery_id: int
    is_new: bool


def dedup_key(group: AlertGroup) -> str:
    """Same group key, alert fingerprints, statuses and start times → same key: a redelivery or a repeat."""
    parts = sorted(f"{a.fingerprint}|{a.status}|{to_epoch(a.starts_at):.3f}" for a in group.alerts)
    return hashlib.sha256("\n".join([group.group_key, *parts]).encode()).hexdigest()


async def record(conn: AsyncConnection, group: AlertGroup, payload: str) -> Receipt:
    """Store a delivery and its triage job, or count a redelivery; one transaction, committed by the caller."""
    now = time.time()
    row = (
        await conn.execute(
            text(
                "INSERT INTO deliveries (dedup_key, group_key, status, receiver, alert_count, truncated_alerts,"
                " payload, received_at, last_received_at, times_received)"
                " VALUES (:key, :group_key, :status, :receiver, :count, :truncated, :payload, :now, :now, 1)"
                " ON CONFLICT (dedup_key) DO UPDATE SET times_received = deliveries.times_received + 1,"
                " last_received_at = excluded.last_received_at"
                " RETURNING id, times_received"
            ),
            {
                "key": dedup_key(group),
                "group_key": group.group_key,
                "status": group.status,
                "receiver": group.receiver,
                "count": len(group.alerts),
                "truncated": group.truncated_alerts,
                "payload": payload,
                "now": now,
            },
        )
    ).one()
    is_new = row.times_received == 1
    if is_new:
        await jobs.enqueue(conn, TRIAGE, group.group_key, {"delivery_id": row.id}, now=now)
    else:
        await conn.execute(
            text(
                "UPDATE incidents SET last_received_at = :now, repeats = repeats + 1"
                " WHERE group_key = :group_key AND status = 'open'"
            ),
            {"now": now, "group_key": group.group_key},
        )
    return Receipt(row.id, is_new)


async def load(conn: AsyncConnection, delivery_id: int) -> tuple[str, int | None, str | None]:
    """The stored payload and, once correlated, the incident it went to and what it changed."""
    row = (
        await conn.execute(
            text("SELECT payload, incident_id, change FROM deliveries WHERE id = :id"), {"id": delivery_id}
        )
    ).one()
    return row.payload, row.incident_id, row.change


async def mark_correlated(conn: AsyncConnection, delivery_id: int, incident_id: int, change: str) -> None:
    await conn.execute(
        text("UPDATE deliveries SET incident_id = :incident, change = :change WHERE id = :id"),
        {"incident": incident_id, "change": change, "id": delivery_id},
    )


async def count(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT count(*) FROM deliveries"))).scalar_one())
