"""Past incidents: the last few incidents of the same alert on the same target, with what was concluded then."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.models import Correlation, Evidence, RunbookMatch
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
        where = f"{key[0]}={key[1]}" if key else "any target"
        title = f"past {alert.name} incidents on {where}"
        return [
            Evidence(self.name, title, f"{alert.name} {{{where}}}", lines=tuple(_line(item) for item in same))
        ]


def key_label(labels: Mapping[str, str]) -> tuple[str, str] | None:
    return next(((name, labels[name]) for name in KEY_LABELS if name in labels), None)


def _line(item: Mapping[str, Any]) -> str:
    opened, resolved = item["opened_at"], item["resolved_at"]
    lasted = f"resolved after {_minutes(resolved - opened)}" if resolved else "still open"
    diagnosis = (item["diagnosis"] or {}).get("summary", "") or "no diagnosis"
    first = diagnosis.strip().splitlines()[0][:300] if diagnosis.strip() else "no diagnosis"
    return f"#{item['id']} {opened:%Y-%m-%d %H:%M} UTC, {lasted}: {first}"


def _minutes(delta: Any) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"
