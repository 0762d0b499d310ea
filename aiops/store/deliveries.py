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


async def record(conn: AsyncConnection, group: AlertGroup, payload: str, key: str | None = None) -> Receipt:
    """Store a delivery and its triage job, or count a redelivery; one transaction, committed by the caller.
    `key` is the group's `dedup_key`, when the caller computed it already (off the event loop, for a big group)."""
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
                "key": key or dedup_key(group),
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


@dataclass(frozen=True)
class Stored:
    """A delivery as correlation finds it: the payload, and how far an earlier attempt got."""

    payload: str
    incident_id: int | None  # set by the first transaction of its correlation
    opened_incident: bool  # that transaction opened the incident
    change: str | None  # set by the last one: correlation is finished
    alert_count: int


async def load(conn: AsyncConnection, delivery_id: int) -> Stored:
    row = (
        await conn.execute(
            text(
                "SELECT payload, incident_id, opened_incident, change, alert_count FROM deliveries WHERE id = :id"
            ),
            {"id": delivery_id},
        )
    ).one()
    return Stored(row.payload, row.incident_id, bool(row.opened_incident), row.change, row.alert_count)


async def claim(conn: AsyncConnection, delivery_id: int, incident_id: int, *, opened: bool) -> None:
    """Record which incident the delivery goes to before its alerts are written, chunk by chunk."""
    claimed = await conn.execute(
        text(
            "UPDATE deliveries SET incident_id = :incident, opened_incident = :opened"
            " WHERE id = :id AND incident_id IS NULL"
        ),
        {"incident": incident_id, "opened": opened, "id": delivery_id},
    )
    if claimed.rowcount != 1:
        raise RuntimeError(f"delivery {delivery_id} was claimed by another correlation meanwhile; retry it")


async def mark_correlated(conn: AsyncConnection, delivery_id: int, incident_id: int, change: str) -> None:
    await conn.execute(
        text("UPDATE deliveries SET incident_id = :incident, change = :change WHERE id = :id"),
        {"incident": incident_id, "change": change, "id": delivery_id},
    )


async def count(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT count(*) FROM deliveries"))).scalar_one())
