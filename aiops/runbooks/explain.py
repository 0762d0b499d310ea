"""`aiops runbooks match PAYLOAD.json`: for each alert, the runbook it matches, why, and its rendered queries."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aiops.models import Alert
from aiops.runbooks.library import RunbookLibrary
from aiops.runbooks.model import Runbook
from aiops.runbooks.queries import render_queries


def explain(directory: Path, alerts: Sequence[Alert]) -> str:
    library = RunbookLibrary(directory)
    lines: list[str] = []
    for alert in alerts:
        match, runbook = library.find(alert)
        labels = ", ".join(f"{key}={value}" for key, value in sorted(alert.labels.items()))
        lines.append(f"{alert.name} {{{labels}}}")
        if runbook is None:
            lines.append(f"  no runbook: {match.reason}")
            continue
        lines.append(f"  runbook: {match.path} @ {match.commit} ({match.reason})")
        lines.extend(_details(runbook, alert))
    return "\n".join(lines)


def _details(runbook: Runbook, alert: Alert) -> list[str]:
    lines = [
        f"  {query.language} {query.name}: " + (f"refused: {query.error}" if query.error else query.query)
        for query in render_queries(runbook, alert)
    ]
    lines += [f"  allows action {action}" for action in runbook.actions]
    return lines
