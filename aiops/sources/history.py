"""Past incidents: the last few incidents of the same alert on the same target, with what was concluded then and
what was done: which action ran, who decided it, whether it recovered the incident, and how fast.

The outcomes travel with the evidence (`Evidence.outcomes`), so the prompt, the offline diagnosis and the plan can
put first the action that recovered this alert on this target before, and say which one did not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.i18n import message
from aiops.models import Correlation, Evidence, Message, PastOutcome, RunbookMatch
from aiops.store import incidents, verifications
from aiops.units import seconds_said as seconds

# The label that says *where* an alert fired; the first one present is compared with past incidents.
KEY_LABELS = ("instance", "host", "node", "pod", "service", "job")


class HistoryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    limit: int = Field(default=3, ge=1, le=20)


class HistorySource:
    name = "history"

    def __init__(self, config: HistoryConfig, engine: AsyncEngine) -> None:
        self._config = config
        self._engine = engine

    async def gather(self, correlation: Correlation, runbook: RunbookMatch) -> list[Evidence]:
        alert = (correlation.new_firing or correlation.alerts)[0]
        key = key_label(alert.labels)
        async with self._engine.connect() as conn:
            same = await similar(conn, alert.name, correlation.incident.id, key, self._config.limit)
        where = f"{key[0]}={key[1]}" if key else ""
        title = (
            message("evidence_history", alert=alert.name, where=where)
            if key
            else message("evidence_history_anywhere", alert=alert.name)
        )
        outcomes = tuple(outcome for item in same for outcome in item["outcomes"])
        lines = tuple(line for item in same for line in _lines(item))
        return [Evidence(self.name, title, f"{alert.name} {{{where}}}", lines=lines, outcomes=outcomes)]


async def similar(
    conn: Any, name: str, exclude: int, where: tuple[str, str] | None, limit: int
) -> list[dict[str, Any]]:
    """Past incidents of the alert `name` on the target `where` (see `incidents.past`), each with its
    "outcomes": what ran on it and what came of it, newest first."""
    same = await incidents.past(conn, name, exclude, where, limit)
    ran = await verifications.outcomes_of(conn, [item["id"] for item in same])
    for item in same:
        item["outcomes"] = tuple(_outcome(item["id"], found) for found in reversed(ran.get(item["id"], [])))
    return same


def memory(evidence: Sequence[Evidence]) -> tuple[list[PastOutcome], list[PastOutcome]]:
    """From the evidence: the actions that recovered this alert on this target the last time each ran, and those
    that did not (failed, or did not recover it), newest first; one entry per action."""
    latest: dict[str, PastOutcome] = {}
    for item in evidence:
        for outcome in item.outcomes:
            latest.setdefault(outcome.action_id, outcome)
    worked = [o for o in latest.values() if o.outcome == "recovered"]
    failed = [o for o in latest.values() if o.outcome in ("not_recovered", "failed")]
    return worked, failed


def remembered(evidence: Sequence[Evidence]) -> list[Message]:
    """What the diagnosis says first: the fix that worked here before, then the one that did not."""
    worked, failed = memory(evidence)
    said = [message("history_worked_before", line=outcome_line(o), id=o.incident_id) for o in worked]
    return said + [message("history_failed_before", line=outcome_line(o), id=o.incident_id) for o in failed]


def rank(action_id: str, evidence: Sequence[Evidence]) -> int:
    """Sort key of a proposal: 0 the action recovered this before, 2 it did not work last time, 1 otherwise."""
    worked, failed = memory(evidence)
    if any(o.action_id == action_id for o in worked):
        return 0
    return 2 if any(o.action_id == action_id for o in failed) else 1


def outcome_line(outcome: PastOutcome) -> Message:
    how = (
        message("history_how_auto")
        if outcome.automatic
        else message("history_how_approved", who=str(outcome.decided_by))
    )
    names: dict[str, str | Message] = {"action": outcome.action_id, "how": how}
    if outcome.outcome == "recovered":
        return message("history_fix_recovered", **names, seconds=seconds(outcome.seconds or 0.0))
    if outcome.outcome in ("not_recovered", "failed"):
        return message(f"history_fix_{outcome.outcome}", **names)
    return message("history_fix_unverified", **names)


def _outcome(incident_id: int, found: Mapping[str, Any]) -> PastOutcome:
    state, verified = found["state"], found["outcome"]
    outcome = "failed" if state in ("failed", "unknown") else verified or "unverified"
    return PastOutcome(
        incident_id,
        str(found["action_id"]),
        outcome,
        found["recovered_after"],
        found["decided_by"],
        verifications.automatic(found),
    )


def _lines(item: Mapping[str, Any]) -> list[Message]:
    return [_line(item)] + [
        message("history_fix_line", id=item["id"], line=outcome_line(o)) for o in item["outcomes"]
    ]


def key_label(labels: Mapping[str, str]) -> tuple[str, str] | None:
    return next(((name, labels[name]) for name in KEY_LABELS if name in labels), None)


def _line(item: Mapping[str, Any]) -> Message:
    """One past incident: when, how long, and the first line of what was concluded then (in its own words)."""
    opened, resolved = item["opened_at"], item["resolved_at"]
    summary = str((item["diagnosis"] or {}).get("summary", "") or "").strip()
    names = {"id": item["id"], "opened": f"{opened:%Y-%m-%d %H:%M}"}
    said = summary.splitlines()[0][:300] if summary else message("history_no_diagnosis")
    if resolved is None:
        return message("history_open", **names, summary=said)
    return message("history_resolved", **names, lasted=_lasted(resolved - opened), summary=said)


def _lasted(delta: Any) -> Message:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return message("duration_minutes", minutes=minutes)
    return message("duration_hours", hours=minutes // 60, minutes=minutes % 60)
