"""What the guardrails of automatic remediation read and write: the pause switch and the automatic runs so far.

The switch is one row shared by every replica. "Automatic" means approved by the policy (`decided_via = 'auto'`):
those are what the budgets count, from the proposals, so that an execution still queued counts as much as one
that ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from aiops.store.codec import from_epoch

AUTO = "auto"  # decided_via of a proposal the policy approved
_LOCK_ID = 0x4A1096  # serialises the budget checks of replicas on PostgreSQL; any constant only aiops takes


@dataclass(frozen=True)
class Switch:
    """Whether automatic remediation is paused, and who last changed that, through what, when."""

    paused: bool
    actor: str | None = None
    channel: str | None = None
    since: datetime | None = None


async def switch(conn: AsyncConnection) -> Switch:
    row = (await conn.execute(text("SELECT * FROM remediation_switch WHERE id = 1"))).one_or_none()
    if row is None:
        return Switch(False)
    return Switch(bool(row.paused), row.actor, row.channel, from_epoch(row.changed_at))


async def set_switch(conn: AsyncConnection, paused: bool, actor: str, channel: str) -> bool:
    """Pause or resume; False when it already was (nothing changes then, not even who or since when)."""
    await lock(conn)
    if (await switch(conn)).paused == paused:
        return False
    await conn.execute(
        text(
            "INSERT INTO remediation_switch (id, paused, actor, channel, changed_at)"
            " VALUES (1, :paused, :actor, :channel, :now) ON CONFLICT (id) DO UPDATE SET"
            " paused = excluded.paused, actor = excluded.actor, channel = excluded.channel,"
            " changed_at = excluded.changed_at"
        ),
        {"paused": paused, "actor": actor, "channel": channel, "now": time.time()},
    )
    return True


async def lock(conn: AsyncConnection) -> None:
    """Hold the guardrails until the transaction ends, so two replicas cannot both spend a budget's last run
    (SQLite has one writer at a time anyway)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})


async def automatic_since(conn: AsyncConnection, since: float, alertname: str | None = None) -> int:
    """Proposals the policy approved since `since`: all of them, or those planned for one alert rule."""
    where = " AND alertname = :name" if alertname is not None else ""
    row = await conn.execute(
        text(f"SELECT count(*) FROM proposals WHERE decided_via = :auto AND decided_at >= :since{where}"),
        {"auto": AUTO, "since": since, "name": alertname},
    )
    return int(row.scalar_one())


async def cluster_of(conn: AsyncConnection, incident_id: int) -> int | None:
    row = await conn.execute(text("SELECT cluster_id FROM incidents WHERE id = :id"), {"id": incident_id})
    found = row.scalar_one_or_none()
    return None if found is None else int(found)


async def automatic_hosts(conn: AsyncConnection, cluster_id: int) -> set[str]:
    """The hosts the policy approved an action on for members of a storm cluster."""
    rows = await conn.execute(
        text(
            "SELECT DISTINCT p.host FROM proposals p JOIN incidents i ON i.id = p.incident_id"
            " WHERE i.cluster_id = :cluster AND p.decided_via = :auto AND p.host IS NOT NULL"
        ),
        {"cluster": cluster_id, "auto": AUTO},
    )
    return {str(row.host) for row in rows}
