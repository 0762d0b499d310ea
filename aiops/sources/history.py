"""Past incidents: the last few incidents of the same alert on the same target, with what was concluded then."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.i18n import message
from aiops.models import Correlation, Evidence, Message, RunbookMatch
from aiops.store import incidents

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
            same = await incidents.past(conn, alert.name, correlation.incident.id, key, self._config.limit)
        where = f"{key[0]}={key[1]}" if key else ""
        title = (
            message("evidence_history", alert=alert.name, where=where)
            if key
            else message("evidence_history_anywhere", alert=alert.name)
        )
        return [
            Evidence(self.name, title, f"{alert.name} {{{where}}}", lines=tuple(_line(item) for item in same))
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
