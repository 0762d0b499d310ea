"""`aiops runbooks match PAYLOAD.json`: for each alert, the runbook it matches, why, and its rendered queries."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aiops.models import Alert
from aiops.runbooks.library import RunbookLibrary
from aiops.runbooks.model import Runbook
from aiops.runbooks.render import Language, RenderError, render


def explain(directory: Path, alerts: Sequence[Alert]) -> str:
    library = RunbookLibrary(directory)
    by_path = {runbook.path.as_posix(): runbook for runbook in library.runbooks()}
    lines: list[str] = []
    for alert in alerts:
        match = library.match(alert)
        labels = ", ".join(f"{key}={value}" for key, value in sorted(alert.labels.items()))
        lines.append(f"{alert.name} {{{labels}}}")
        if match.path is None:
            lines.append(f"  no runbook: {match.reason}")
            continue
        lines.append(f"  runbook: {match.path} @ {match.commit} ({match.reason})")
        lines.extend(_queries(by_path[match.path], alert))
    return "\n".join(lines)


def _queries(runbook: Runbook, alert: Alert) -> list[str]:
    queries: list[tuple[str, str, Language]] = [(m.name, m.query, "promql") for m in runbook.metrics]
    queries += [
        (f"logs[{n}]", log.loki, "logql") for n, log in enumerate(runbook.logs) if log.loki is not None
    ]
    lines = []
    for name, template, language in queries:
        try:
            lines.append(
                f"  {language} {name}: {render(template, alert.labels, language, annotations=alert.annotations)}"
            )
        except RenderError as error:
            lines.append(f"  {language} {name}: refused: {error}")
    lines += [f"  command {log.command}" for log in runbook.logs if log.command is not None]
    lines += [f"  allows action {action}" for action in runbook.actions]
    return lines
