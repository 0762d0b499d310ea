"""The fault process of one incident, as recorded: opened, announced, diagnosed, proposed, decided, executed,
verified, resolved — each with its time, read from what the store keeps anyway.

| stage | from |
|---|---|
| opened, resolved | `incidents.opened_at`, `resolved_at` |
| announced | the first `triages.announced_at` (the card handed to the channels); before migration 0008, the first
  `opened` notification recorded |
| diagnosed | the first `diagnosed` event (the model's diagnosis landed, or the offline one without a model) |
| proposed | the first proposal that could be proposed (`proposals.created_at`) |
| decided | the first decision (`proposals.decided_at`: a person's, or the policy's for `auto`) |
| executed | the first execution that finished (`executions.finished_at`) |
| verified | the verification of an execution — see `_verified` |

A stage that did not happen (yet) has no time; the stages stay in this order whatever the times say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from aiops.i18n import from_column, message
from aiops.models import Text
from aiops.store.codec import from_epoch

STAGES = ("opened", "announced", "diagnosed", "proposed", "decided", "executed", "verified", "resolved")


@dataclass(frozen=True)
class Stage:
    """One step of the process: when (None: not reached), seconds after the incident opened, and a few words
    (who decided, how an execution ended)."""

    name: str
    at: datetime | None
    after: float | None
    detail: Text = ""

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.name, "at": self.at, "after_seconds": self.after, "detail": self.detail}


async def timeline(conn: AsyncConnection, incident_id: int) -> list[Stage] | None:
    """The incident's fault process in stage order; None when there is no such incident."""
    row = (
        await conn.execute(
            text("SELECT opened_at, resolved_at FROM incidents WHERE id = :id"), {"id": incident_id}
        )
    ).one_or_none()
    if row is None:
        return None
    opened = float(row.opened_at)
    found: dict[str, tuple[float | None, Text]] = {
        "opened": (opened, ""),
        "announced": (await _announced(conn, incident_id), ""),
        "diagnosed": (await _first(conn, _DIAGNOSED, incident_id), ""),
        "proposed": (await _first(conn, _PROPOSED, incident_id), ""),
        "decided": await _decided(conn, incident_id),
        "executed": await _executed(conn, incident_id),
        "verified": await _verified(conn, incident_id),
        "resolved": (None if row.resolved_at is None else float(row.resolved_at), ""),
    }
    return [_stage(name, *found[name], opened) for name in STAGES]


def _stage(name: str, at: float | None, detail: Text, opened: float) -> Stage:
    return Stage(name, from_epoch(at), None if at is None else round(max(0.0, at - opened), 3), detail)


_DIAGNOSED = "SELECT min(at) FROM events WHERE incident_id = :id AND kind = 'diagnosed'"
_PROPOSED = "SELECT min(created_at) FROM proposals WHERE incident_id = :id AND state <> 'refused'"


async def _first(conn: AsyncConnection, query: str, incident_id: int) -> float | None:
    found = (await conn.execute(text(query), {"id": incident_id})).scalar()
    return None if found is None else float(found)


async def _announced(conn: AsyncConnection, incident_id: int) -> float | None:
    claimed = await _first(conn, "SELECT min(announced_at) FROM triages WHERE incident_id = :id", incident_id)
    if claimed is not None:
        return claimed
    return await _first(
        conn,
        "SELECT min(created_at) FROM notifications WHERE incident_id = :id AND purpose = 'opened'",
        incident_id,
    )


async def _decided(conn: AsyncConnection, incident_id: int) -> tuple[float | None, Text]:
    row = (
        await conn.execute(
            text(
                "SELECT decided_at, decided_by, decided_via, state FROM proposals WHERE incident_id = :id"
                " AND decided_at IS NOT NULL ORDER BY decided_at LIMIT 1"
            ),
            {"id": incident_id},
        )
    ).one_or_none()
    if row is None:
        return None, ""
    verdict = "rejected" if row.state == "rejected" else "approved"
    said = message(f"process_{verdict}_by", who=str(row.decided_by), via=str(row.decided_via))
    return float(row.decided_at), said


async def _executed(conn: AsyncConnection, incident_id: int) -> tuple[float | None, Text]:
    row = (
        await conn.execute(
            text(
                "SELECT e.finished_at, e.action_id, e.host, e.state FROM executions e"
                " JOIN proposals p ON p.id = e.proposal_id WHERE p.incident_id = :id"
                " AND e.finished_at IS NOT NULL ORDER BY e.finished_at LIMIT 1"
            ),
            {"id": incident_id},
        )
    ).one_or_none()
    if row is None:
        return None, ""
    state = message(f"approval_state_{row.state}")
    said = message("process_executed_detail", action=row.action_id, host=str(row.host), state=state)
    return float(row.finished_at), said


async def _verified(conn: AsyncConnection, incident_id: int) -> tuple[float | None, Text]:
    """When the first verification of the incident's executions was decided, and what it said."""
    row = (
        await conn.execute(
            text(
                "SELECT decided_at, detail FROM verifications WHERE incident_id = :id AND decided_at IS NOT NULL"
                " ORDER BY decided_at LIMIT 1"
            ),
            {"id": incident_id},
        )
    ).one_or_none()
    if row is None:
        return None, ""
    return float(row.decided_at), from_column(row.detail) or ""
