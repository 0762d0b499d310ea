"""Proposals, executions and the audit trail.

A proposal is bound to `argv_hash`, a digest of its exact host and argv; approving means moving it from `pending`
to `approved` in one conditional UPDATE, so a second click changes nothing. An execution row is written — and
committed — before any connection is made, and `proposal_id` is unique there: an action runs at most once.
The audit table is only ever inserted into.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from aiops.i18n import from_column, message, to_column
from aiops.models import Proposal, Text
from aiops.store.codec import from_epoch

OPEN_STATES = ("pending",)
# Every state a proposal can be in, and what it means to a reader.
STATES = {
    "refused": "could not be proposed",
    "suggested": "shown only (remediation.mode: suggest)",
    "pending": "waiting for an approval",
    "approved": "approved, waiting to run",
    "rejected": "rejected",
    "expired": "not approved in time",
    "moot": "the incident resolved before an approval",
    "running": "running",
    "succeeded": "ran, exit status 0",
    "failed": "ran and failed",
    "unknown": "outcome unknown (aiops stopped while it ran); not run again",
    "dry_run": "approved; dry run, nothing was run",
}
# What a verification of an execution can conclude (aiops/actions/verify.py).
VERIFIED = {
    "recovered": "the incident recovered after it ran",
    "not_recovered": "the incident did not recover within the window",
    "unknown": "whether it recovered is unknown (Prometheus could not be asked)",
}


def argv_hash(host: str | None, argv: Sequence[str]) -> str:
    """What an approval is bound to: the exact host and argv."""
    return hashlib.sha256(json.dumps([host, list(argv)]).encode()).hexdigest()


async def record_proposal(
    conn: AsyncConnection,
    incident_id: int,
    delivery_id: int,
    proposal: Proposal,
    state: str,
    expires_at: float | None,
    held: Text | None = None,
) -> int | None:
    """The proposal's id, or None when this delivery already proposed the same argv (a re-run after a crash).
    One recorded `approved` was approved by the policy (`remediation.mode: auto`): decided by `policy` via `auto`
    as it is recorded. `held` says which guardrail made one `auto` would have run wait for an approval."""
    now = time.time()
    automatic = state == "approved"
    row = await conn.execute(
        text(
            "INSERT INTO proposals (incident_id, delivery_id, action_id, host, argv, argv_hash, risk, origin, reason,"
            " state, detail, timeout, output_cap, created_at, expires_at, held, alertname, decided_by, decided_via,"
            " decided_at) VALUES (:incident, :delivery, :action, :host, :argv, :hash, :risk, :origin, :reason,"
            " :state, :detail, :timeout, :cap, :now, :expires, :held, :alertname, :by, :via, :decided)"
            " ON CONFLICT (delivery_id, action_id, argv_hash) DO NOTHING RETURNING id"
        ),
        {
            "held": to_column(held),
            "alertname": proposal.alertname,
            "by": "policy" if automatic else None,
            "via": "auto" if automatic else None,
            "decided": now if automatic else None,
            "incident": incident_id,
            "delivery": delivery_id,
            "action": proposal.action_id,
            "host": proposal.host,
            "argv": json.dumps(list(proposal.argv)),
            "hash": argv_hash(proposal.host, proposal.argv),
            "risk": proposal.risk,
            "origin": proposal.origin,
            "reason": to_column(proposal.reason),
            "state": state,
            "detail": to_column(proposal.refusal),
            "timeout": proposal.timeout,
            "cap": proposal.output_cap,
            "now": now,
            "expires": expires_at,
        },
    )
    return row.scalar()


async def audit(
    conn: AsyncConnection,
    kind: str,
    detail: Text,
    *,
    incident_id: int | None = None,
    proposal_id: int | None = None,
    actor: str | None = None,
    channel: str | None = None,
    hashed: str | None = None,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO audit (at, incident_id, proposal_id, kind, actor, channel, argv_hash, detail)"
            " VALUES (:at, :incident, :proposal, :kind, :actor, :channel, :hash, :detail)"
        ),
        {
            "at": time.time(),
            "incident": incident_id,
            "proposal": proposal_id,
            "kind": kind,
            "actor": actor,
            "channel": channel,
            "hash": hashed,
            "detail": to_column(detail),
        },
    )


async def proposal(conn: AsyncConnection, proposal_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    """One proposal; `lock` holds its row until the transaction ends (PostgreSQL; SQLite locks the database)."""
    suffix = " FOR UPDATE" if lock and conn.dialect.name == "postgresql" else ""
    row = (
        await conn.execute(text(f"SELECT * FROM proposals WHERE id = :id{suffix}"), {"id": proposal_id})
    ).first()
    return _proposal(row._mapping) if row is not None else None


async def set_state(
    conn: AsyncConnection,
    proposal_id: int,
    state: str,
    *,
    expected: str,
    actor: str | None = None,
    channel: str | None = None,
    detail: Text | None = None,
) -> bool:
    """Move a proposal from `expected` to `state`; False when it was no longer in `expected` (someone was first)."""
    decided = actor is not None
    result = await conn.execute(
        text(
            "UPDATE proposals SET state = :state"
            + (", decided_by = :actor, decided_via = :channel, decided_at = :now" if decided else "")
            + (", detail = :detail" if detail is not None else "")
            + " WHERE id = :id AND state = :expected"
        ),
        {
            "state": state,
            "actor": actor,
            "channel": channel,
            "now": time.time(),
            "detail": to_column(detail),
            "id": proposal_id,
            "expected": expected,
        },
    )
    return bool(result.rowcount)


async def pending(conn: AsyncConnection, incident_id: int | None = None) -> list[dict[str, Any]]:
    """Proposals waiting for an approval, oldest first; of one incident, or all."""
    where = " AND incident_id = :incident" if incident_id is not None else ""
    rows = await conn.execute(
        text(f"SELECT * FROM proposals WHERE state = 'pending'{where} ORDER BY id"), {"incident": incident_id}
    )
    return [_proposal(row._mapping) for row in rows]


async def pending_stats(conn: AsyncConnection, now: float | None = None) -> tuple[int, float]:
    """How many proposals wait for an approval, and how long the oldest has waited (seconds; 0 when none)."""
    row = (
        await conn.execute(text("SELECT COUNT(*), MIN(created_at) FROM proposals WHERE state = 'pending'"))
    ).one()
    count, oldest = int(row[0]), row[1]
    if not count or oldest is None:
        return 0, 0.0
    return count, max(0.0, (time.time() if now is None else now) - float(oldest))


async def expire_due(conn: AsyncConnection, now: float | None = None) -> list[dict[str, Any]]:
    """Mark pending proposals past their expiry as expired; returns them (for the audit trail)."""
    now = time.time() if now is None else now
    rows = await conn.execute(
        text(
            "SELECT * FROM proposals WHERE state = 'pending' AND expires_at IS NOT NULL AND expires_at <= :now"
        ),
        {"now": now},
    )
    expired = [_proposal(row._mapping) for row in rows]
    for item in expired:
        if await set_state(conn, item["id"], "expired", expected="pending"):
            await audit(
                conn,
                "expired",
                message("audit_expired"),
                incident_id=item["incident_id"],
                proposal_id=item["id"],
                hashed=item["argv_hash"],
            )
    return expired


async def start_execution(conn: AsyncConnection, item: dict[str, Any]) -> int:
    row = await conn.execute(
        text(
            "INSERT INTO executions (proposal_id, action_id, host, argv, argv_hash, state, truncated, started_at)"
            " VALUES (:proposal, :action, :host, :argv, :hash, 'running', 0, :now) RETURNING id"
        ),
        {
            "proposal": item["id"],
            "action": item["action_id"],
            "host": item["host"],
            "argv": json.dumps(item["argv"]),
            "hash": item["argv_hash"],
            "now": time.time(),
        },
    )
    return int(row.scalar_one())


async def execution_of(conn: AsyncConnection, proposal_id: int) -> dict[str, Any] | None:
    row = (
        await conn.execute(text("SELECT * FROM executions WHERE proposal_id = :id"), {"id": proposal_id})
    ).first()
    return _execution(row._mapping) if row is not None else None


async def execution_by_id(conn: AsyncConnection, execution_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(text("SELECT * FROM executions WHERE id = :id"), {"id": execution_id})).first()
    return _execution(row._mapping) if row is not None else None


async def finish_execution(
    conn: AsyncConnection,
    execution_id: int,
    state: str,
    *,
    exit_status: int | None = None,
    stdout: str = "",
    stderr: str = "",
    truncated: bool = False,
    error: Text | None = None,
) -> None:
    await conn.execute(
        text(
            "UPDATE executions SET state = :state, exit_status = :status, stdout = :stdout, stderr = :stderr,"
            " truncated = :truncated, error = :error, finished_at = :now WHERE id = :id"
        ),
        {
            "state": state,
            "status": exit_status,
            "stdout": stdout,
            "stderr": stderr,
            "truncated": int(truncated),
            "error": to_column(error),
            "now": time.time(),
            "id": execution_id,
        },
    )


async def recent_runs(conn: AsyncConnection, action_id: str, host: str, since: float) -> int:
    row = await conn.execute(
        text(
            "SELECT count(*) FROM executions WHERE action_id = :action AND host = :host AND started_at >= :since"
        ),
        {"action": action_id, "host": host, "since": since},
    )
    return int(row.scalar_one())


async def running_on(conn: AsyncConnection, host: str, other_than: int) -> bool:
    row = await conn.execute(
        text(
            "SELECT count(*) FROM executions WHERE host = :host AND state = 'running' AND proposal_id <> :id"
        ),
        {"host": host, "id": other_than},
    )
    return bool(row.scalar_one())


async def of_incident(conn: AsyncConnection, incident_id: int) -> dict[str, list[dict[str, Any]]]:
    """The incident's proposals (each with its execution) and audit trail, oldest first."""
    params = {"id": incident_id}
    proposals = [
        _proposal(row._mapping)
        for row in await conn.execute(
            text("SELECT * FROM proposals WHERE incident_id = :id ORDER BY id"), params
        )
    ]
    executions = {
        row.proposal_id: _execution(row._mapping)
        for row in await conn.execute(
            text(
                "SELECT e.* FROM executions e JOIN proposals p ON p.id = e.proposal_id WHERE p.incident_id = :id"
            ),
            params,
        )
    }
    for item in proposals:
        item["execution"] = executions.get(item["id"])
    trail = [
        _audit(row._mapping)
        for row in await conn.execute(text("SELECT * FROM audit WHERE incident_id = :id ORDER BY id"), params)
    ]
    return {"proposals": proposals, "audit": trail}


async def of_delivery(conn: AsyncConnection, delivery_id: int) -> list[dict[str, Any]]:
    """The proposals one delivery's triage made, in order."""
    rows = await conn.execute(
        text("SELECT * FROM proposals WHERE delivery_id = :id ORDER BY id"), {"id": delivery_id}
    )
    return [_proposal(row._mapping) for row in rows]


async def audit_since(conn: AsyncConnection, since: float) -> list[dict[str, Any]]:
    rows = await conn.execute(text("SELECT * FROM audit WHERE at >= :since ORDER BY id"), {"since": since})
    return [_audit(row._mapping) for row in rows]


async def stored_secret(conn: AsyncConnection, name: str, fresh: str) -> str:
    """The secret kept under `name`, storing `fresh` when there is none yet (the first replica to ask wins)."""
    await conn.execute(
        text("INSERT INTO secrets (name, value) VALUES (:name, :value) ON CONFLICT (name) DO NOTHING"),
        {"name": name, "value": fresh},
    )
    row = await conn.execute(text("SELECT value FROM secrets WHERE name = :name"), {"name": name})
    return str(row.scalar_one())


def _proposal(row: RowMapping) -> dict[str, Any]:
    item = dict(row)
    item["argv"] = json.loads(item["argv"])
    for key in ("created_at", "expires_at", "decided_at"):
        item[key] = from_epoch(item[key])
    for key in ("reason", "detail", "held"):
        item[key] = from_column(item.get(key))
    item["meaning"] = STATES.get(item["state"], item["state"])
    return item


def _execution(row: RowMapping) -> dict[str, Any]:
    item = dict(row)
    item["argv"] = json.loads(item["argv"])
    item["truncated"] = bool(item["truncated"])
    item["error"] = from_column(item["error"])
    for key in ("started_at", "finished_at"):
        item[key] = from_epoch(item[key])
    return item


def _audit(row: RowMapping) -> dict[str, Any]:
    item = dict(row)
    item["at"] = from_epoch(item["at"])
    item["detail"] = from_column(item["detail"])
    return item
