"""Storm clusters: incidents sharing a cause signature within a window, diagnosed once together."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from aiops.store.codec import dumps, loads


@dataclass(frozen=True)
class Cluster:
    id: int
    signature: str
    description: str
    members: int
    lead_incident_id: int
    diagnosis: dict[str, Any] | None  # the shared diagnosis as stored, once it landed


@dataclass(frozen=True)
class Member:
    incident_id: int
    delivery_id: int  # the incident's latest triaged delivery
    status: str
    severity: str
    title: str
    labels: dict[str, str]
    diagnosed: bool  # that delivery already has the model's diagnosis (its own or the cluster's)


async def set_signature(conn: AsyncConnection, incident_id: int, signature: str) -> str | None:
    """Record the incident's cause signature; returns the one it had before (None the first time)."""
    before = (
        await conn.execute(text("SELECT signature FROM incidents WHERE id = :id"), {"id": incident_id})
    ).scalar_one_or_none()
    if before != signature:
        await conn.execute(
            text("UPDATE incidents SET signature = :signature WHERE id = :id"),
            {"signature": signature, "id": incident_id},
        )
    return before


async def open_for(conn: AsyncConnection, signature: str, now: float) -> Cluster | None:
    row = (
        await conn.execute(
            text(
                "SELECT * FROM clusters WHERE signature = :signature AND closes_at > :now ORDER BY id DESC LIMIT 1"
            ),
            {"signature": signature, "now": now},
        )
    ).one_or_none()
    return None if row is None else _cluster(row._mapping)


async def loners(conn: AsyncConnection, signature: str, since: float, exclude: int) -> list[int]:
    """Open incidents with this signature opened since `since` and in no cluster, oldest first."""
    rows = await conn.execute(
        text(
            "SELECT id FROM incidents WHERE signature = :signature AND opened_at >= :since AND status = 'open'"
            " AND cluster_id IS NULL AND id <> :exclude ORDER BY id"
        ),
        {"signature": signature, "since": since, "exclude": exclude},
    )
    return [int(row.id) for row in rows]


async def create(
    conn: AsyncConnection, signature: str, description: str, members: Sequence[int], closes_at: float
) -> int:
    row = (
        await conn.execute(
            text(
                "INSERT INTO clusters (signature, description, opened_at, closes_at, members, lead_incident_id)"
                " VALUES (:signature, :description, :now, :closes, :members, :lead) RETURNING id"
            ),
            {
                "signature": signature,
                "description": description,
                "now": time.time(),
                "closes": closes_at,
                "members": len(members),
                "lead": members[0],
            },
        )
    ).one()
    cluster_id = int(row.id)
    await conn.execute(
        text(
            f"UPDATE incidents SET cluster_id = :cluster WHERE id IN ({', '.join(str(int(m)) for m in members)})"
        ),
        {"cluster": cluster_id},
    )
    return cluster_id


async def join(conn: AsyncConnection, cluster_id: int, incident_id: int, closes_at: float) -> Cluster:
    """Add a member; the row update serialises with the cluster's diagnosis landing, so a member joining at that
    moment either is among the members the diagnosis is applied to or sees the diagnosis here."""
    row = (
        await conn.execute(
            text("UPDATE clusters SET members = members + 1, closes_at = :closes WHERE id = :id RETURNING *"),
            {"closes": closes_at, "id": cluster_id},
        )
    ).one()
    await conn.execute(
        text("UPDATE incidents SET cluster_id = :cluster WHERE id = :id"),
        {"cluster": cluster_id, "id": incident_id},
    )
    return _cluster(row._mapping)


async def leave(conn: AsyncConnection, incident_id: int) -> int | None:
    """Take the incident out of its cluster (its signature changed); returns the cluster it left."""
    cluster_id = (
        await conn.execute(text("SELECT cluster_id FROM incidents WHERE id = :id"), {"id": incident_id})
    ).scalar_one_or_none()
    if cluster_id is None:
        return None
    await conn.execute(text("UPDATE incidents SET cluster_id = NULL WHERE id = :id"), {"id": incident_id})
    await conn.execute(text("UPDATE clusters SET members = members - 1 WHERE id = :id"), {"id": cluster_id})
    return int(cluster_id)


async def get(conn: AsyncConnection, cluster_id: int) -> Cluster | None:
    row = (
        await conn.execute(text("SELECT * FROM clusters WHERE id = :id"), {"id": cluster_id})
    ).one_or_none()
    return None if row is None else _cluster(row._mapping)


async def of_incident(conn: AsyncConnection, incident_id: int) -> Cluster | None:
    row = (
        await conn.execute(
            text("SELECT c.* FROM clusters c JOIN incidents i ON i.cluster_id = c.id WHERE i.id = :id"),
            {"id": incident_id},
        )
    ).one_or_none()
    return None if row is None else _cluster(row._mapping)


async def record_diagnosis(conn: AsyncConnection, cluster_id: int, diagnosis: object) -> None:
    await conn.execute(
        text("UPDATE clusters SET diagnosis = :diagnosis, diagnosed_at = :now WHERE id = :id"),
        {"diagnosis": dumps(diagnosis), "now": time.time(), "id": cluster_id},
    )


async def members(conn: AsyncConnection, cluster_id: int) -> list[Member]:
    """Every member with its latest triaged delivery, oldest member first."""
    rows = await conn.execute(
        text(
            "SELECT i.id, i.status, i.severity, i.title, i.labels, t.delivery_id, t.diagnosed_at FROM incidents i"
            " JOIN triages t ON t.id = (SELECT max(t2.id) FROM triages t2 WHERE t2.incident_id = i.id)"
            " WHERE i.cluster_id = :cluster ORDER BY i.id"
        ),
        {"cluster": cluster_id},
    )
    return [
        Member(
            incident_id=int(row.id),
            delivery_id=int(row.delivery_id),
            status=row.status,
            severity=row.severity,
            title=row.title,
            labels=loads(row.labels),
            diagnosed=row.diagnosed_at is not None,
        )
        for row in rows
    ]


async def summary(conn: AsyncConnection, incident_id: int) -> dict[str, Any] | None:
    """The storm an incident is part of, for its page and the API: what it shares, who else, the diagnosis."""
    cluster = await of_incident(conn, incident_id)
    if cluster is None:
        return None
    rows = await conn.execute(
        text("SELECT id FROM incidents WHERE cluster_id = :id ORDER BY id"), {"id": cluster.id}
    )
    return {
        "id": cluster.id,
        "signature": cluster.description,
        "members": cluster.members,
        "incident_ids": [int(row.id) for row in rows],
        "diagnosis": cluster.diagnosis,
    }


def _cluster(row: Any) -> Cluster:
    return Cluster(
        id=int(row["id"]),
        signature=row["signature"],
        description=row["description"],
        members=int(row["members"]),
        lead_incident_id=int(row["lead_incident_id"]),
        diagnosis=loads(row["diagnosis"]) if row["diagnosis"] else None,
    )
