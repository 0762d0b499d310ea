"""Verifications of executions, and the circuit breaker of automatic execution.

A verification row is written in the transaction that records its execution's end, and decided once: `decide`
is a conditional UPDATE on `outcome IS NULL`, so of two workers (a restart, a lease taken over) one decides and the
other sees it decided. The breaker is one row: tripped while `tripped_at` is set; what it counts starts after its
last reset.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from aiops.i18n import from_column, message, to_column
from aiops.models import Text
from aiops.store import actions
from aiops.store.codec import from_epoch

OUTCOMES = ("recovered", "not_recovered", "unknown")
BREAKER = "auto"  # the breaker's row: automatic execution


# An execution the policy decided by itself (`remediation.mode: auto`): recorded as decided via `auto`; rows
# written before that was recorded have no decider at all.
AUTOMATIC = "(p.decided_via = 'auto' OR p.decided_by IS NULL)"


def automatic(item: Mapping[str, Any]) -> bool:
    """Whether the policy ran the proposal by itself (`remediation.mode: auto`): no person decided it."""
    return item.get("decided_via") == "auto" or item.get("decided_by") is None


async def start(
    conn: AsyncConnection,
    execution_id: int,
    item: dict[str, Any],
    *,
    automatic: bool,
    window: float,
    now: float | None = None,
) -> int:
    """A verification of `execution_id` (of proposal `item`), watched until `window` seconds from now."""
    now = time.time() if now is None else now
    row = await conn.execute(
        text(
            "INSERT INTO verifications (execution_id, proposal_id, incident_id, action_id, host, automatic,"
            " started_at, deadline) VALUES (:execution, :proposal, :incident, :action, :host, :automatic, :now,"
            " :deadline) RETURNING id"
        ),
        {
            "execution": execution_id,
            "proposal": item["id"],
            "incident": item["incident_id"],
            "action": item["action_id"],
            "host": item["host"],
            "automatic": automatic,
            "now": now,
            "deadline": now + window,
        },
    )
    return int(row.scalar_one())


async def get(conn: AsyncConnection, verification_id: int) -> dict[str, Any] | None:
    row = (
        await conn.execute(text("SELECT * FROM verifications WHERE id = :id"), {"id": verification_id})
    ).first()
    return _verification(row._mapping) if row is not None else None


async def decide(
    conn: AsyncConnection,
    verification_id: int,
    outcome: str,
    detail: Text,
    *,
    recovered_after: float | None = None,
) -> bool:
    """Record the outcome; False when it was decided already (by another worker, or before a restart)."""
    result = await conn.execute(
        text(
            "UPDATE verifications SET outcome = :outcome, detail = :detail, decided_at = :now,"
            " recovered_after = :after WHERE id = :id AND outcome IS NULL"
        ),
        {
            "outcome": outcome,
            "detail": to_column(detail),
            "now": time.time(),
            "after": recovered_after,
            "id": verification_id,
        },
    )
    return bool(result.rowcount)


async def of_proposals(conn: AsyncConnection, proposal_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Each proposal's verification, by proposal id (only those that have one)."""
    if not proposal_ids:
        return {}
    listed = ", ".join(str(int(key)) for key in proposal_ids)
    rows = await conn.execute(text(f"SELECT * FROM verifications WHERE proposal_id IN ({listed})"))
    return {row.proposal_id: _verification(row._mapping) for row in rows}


async def of_incident(conn: AsyncConnection, incident_id: int) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text("SELECT * FROM verifications WHERE incident_id = :id ORDER BY id"), {"id": incident_id}
    )
    return [_verification(row._mapping) for row in rows]


async def attach(conn: AsyncConnection, proposals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`proposals` with each one's verification under "verification" (None when it has none)."""
    if not proposals:
        return proposals
    found = await of_proposals(conn, [item["id"] for item in proposals])
    for item in proposals:
        item["verification"] = found.get(item["id"])
    return proposals


async def has_actions(conn: AsyncConnection, incident_id: int) -> bool:
    """Whether anything was proposed on the incident that could run (not refused, not only suggested)."""
    row = await conn.execute(
        text(
            "SELECT count(*) FROM proposals WHERE incident_id = :id AND state NOT IN ('refused', 'suggested')"
        ),
        {"id": incident_id},
    )
    return bool(row.scalar_one())


async def tried_on(conn: AsyncConnection, incident_id: int, action_id: str) -> bool:
    """Whether `action_id` has already run on the incident: it is then never run again without a person."""
    row = await conn.execute(
        text(
            "SELECT count(*) FROM executions e JOIN proposals p ON p.id = e.proposal_id"
            " WHERE p.incident_id = :incident AND e.action_id = :action"
        ),
        {"incident": incident_id, "action": action_id},
    )
    return bool(row.scalar_one())


async def outcomes_of(conn: AsyncConnection, incident_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """What was run on each incident and what came of it, oldest first: the action, who decided it, the
    execution's state, the verification's outcome and the time to recovery."""
    if not incident_ids:
        return {}
    listed = ", ".join(str(int(key)) for key in incident_ids)
    rows = await conn.execute(
        text(
            "SELECT p.incident_id, p.action_id, p.host, p.decided_by, p.decided_via, e.state,"
            " v.outcome, v.recovered_after FROM executions e JOIN proposals p ON p.id = e.proposal_id"
            " LEFT JOIN verifications v ON v.execution_id = e.id"
            f" WHERE p.incident_id IN ({listed}) ORDER BY e.id"
        )
    )
    found: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        item = dict(row._mapping)
        found.setdefault(int(item.pop("incident_id")), []).append(item)
    return found


# -- the breaker


async def breaker(conn: AsyncConnection) -> dict[str, Any] | None:
    """The breaker while tripped (when, why), or None."""
    row = (
        await conn.execute(
            text("SELECT * FROM breaker WHERE name = :name AND tripped_at IS NOT NULL"), {"name": BREAKER}
        )
    ).first()
    if row is None:
        return None
    return {"tripped_at": from_epoch(row.tripped_at), "reason": from_column(row.reason)}


async def recent_automatic(conn: AsyncConnection, last: int) -> list[bool]:
    """Whether each of the `last` automatic executions decided since the breaker's reset went badly (failed, or
    verified not recovered), newest first. Those still being verified are not counted yet."""
    reset = (
        await conn.execute(text("SELECT reset_at FROM breaker WHERE name = :name"), {"name": BREAKER})
    ).scalar()
    rows = await conn.execute(
        text(
            "SELECT e.state, v.outcome FROM executions e JOIN proposals p ON p.id = e.proposal_id"
            " LEFT JOIN verifications v ON v.execution_id = e.id"
            f" WHERE {AUTOMATIC} AND e.finished_at IS NOT NULL AND e.finished_at > :reset"
            " AND (e.state <> 'succeeded' OR v.outcome IS NOT NULL)"
            " ORDER BY COALESCE(v.decided_at, e.finished_at) DESC LIMIT :last"
        ),
        {"reset": reset or 0.0, "last": last},
    )
    return [row.state in ("failed", "unknown") or row.outcome == "not_recovered" for row in rows]


async def trip(conn: AsyncConnection, reason: Text, incident_id: int | None = None) -> bool:
    """Trip the breaker; False when it was tripped already. The trip is in the audit trail."""
    await conn.execute(
        text("INSERT INTO breaker (name) VALUES (:name) ON CONFLICT (name) DO NOTHING"), {"name": BREAKER}
    )
    result = await conn.execute(
        text(
            "UPDATE breaker SET tripped_at = :now, reason = :reason WHERE name = :name AND tripped_at IS NULL"
        ),
        {"now": time.time(), "reason": to_column(reason), "name": BREAKER},
    )
    if not result.rowcount:
        return False
    await actions.audit(
        conn, "breaker_tripped", reason, incident_id=incident_id, actor="breaker", channel="auto"
    )
    return True


async def breaker_reset(conn: AsyncConnection, actor: str, channel: str = "cli") -> bool:
    """Reset the breaker (what `aiops remediation resume` calls): automatic execution runs again, and the share
    of bad outcomes is counted afresh from now. False when it was not tripped; the reset is audited either way
    only when it changed something."""
    await conn.execute(
        text("INSERT INTO breaker (name) VALUES (:name) ON CONFLICT (name) DO NOTHING"), {"name": BREAKER}
    )
    result = await conn.execute(
        text(
            "UPDATE breaker SET tripped_at = NULL, reason = NULL, reset_at = :now, reset_by = :actor"
            " WHERE name = :name AND tripped_at IS NOT NULL"
        ),
        {"now": time.time(), "actor": actor, "name": BREAKER},
    )
    if not result.rowcount:
        return False
    await actions.audit(
        conn, "breaker_reset", message("audit_breaker_reset", who=actor), actor=actor, channel=channel
    )
    return True


def _verification(row: RowMapping) -> dict[str, Any]:
    item = dict(row)
    item["automatic"] = bool(item["automatic"])
    item["detail"] = from_column(item["detail"])
    for key in ("started_at", "deadline", "decided_at"):
        item[key] = from_epoch(item[key])
    return item
