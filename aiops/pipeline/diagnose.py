"""Diagnose: explain the incident from its evidence. Without an LLM, the offline diagnosis says plainly what the
alert and the evidence show, labelled as not coming from a model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from jinja2 import Environment

from aiops.models import Correlation, Diagnosis, Evidence, RunbookMatch

_TARGET_LABELS = ("instance", "host", "node", "pod", "service", "job")


class Diagnoser(Protocol):
    """Turns an incident and its evidence into a diagnosis; raises when it cannot (the offline one is the fallback)."""

    async def diagnose(
        self, correlation: Correlation, runbook: RunbookMatch, evidence: Sequence[Evidence]
    ) -> Diagnosis: ...


class OfflineDiagnoser:
    def __init__(self, templates: Environment) -> None:
        self._template = templates.get_template("diagnosis/offline.txt.j2")

    async def diagnose(
        self, correlation: Correlation, runbook: RunbookMatch, evidence: Sequence[Evidence]
    ) -> Diagnosis:
        return self.now(correlation, evidence)

    def now(self, correlation: Correlation, evidence: Sequence[Evidence]) -> Diagnosis:
        alerts = correlation.new_firing or correlation.alerts
        summary = self._template.render(
            alerts=_one_per_name(alerts), targets=_targets(alerts), evidence=evidence
        )
        return Diagnosis(source="offline", summary=summary.strip())


def _one_per_name(alerts: Sequence[object]) -> list[object]:
    seen: dict[str, object] = {}
    for alert in alerts:
        seen.setdefault(getattr(alert, "name", ""), alert)
    return list(seen.values())


def _targets(alerts: Sequence[object]) -> list[str]:
    found: list[str] = []
    for alert in alerts:
        labels = getattr(alert, "labels", {})
        target = next((labels[key] for key in _TARGET_LABELS if key in labels), None)
        if target and target not in found:
            found.append(target)
    return found[:10]
