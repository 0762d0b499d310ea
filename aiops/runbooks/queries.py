"""A runbook's evidence queries rendered for one alert: what the sources run, what `runbooks match` shows."""

from __future__ import annotations

from aiops.models import Alert, RunbookQuery
from aiops.runbooks.model import Runbook
from aiops.runbooks.render import Language, RenderError, render


def render_queries(runbook: Runbook, alert: Alert) -> tuple[RunbookQuery, ...]:
    """Every metric and Loki query of `runbook` with the alert's labels; a refused one carries the reason."""
    rendered = [
        _render(metric.name, "promql", metric.query, metric.range, alert) for metric in runbook.metrics
    ]
    for index, log in enumerate(runbook.logs):
        if log.loki is not None:
            rendered.append(_render(f"logs[{index}]", "logql", log.loki, log.range, alert, log.limit))
        elif log.command is not None:
            # Rendered by the command source against the catalog: its parameters have their own patterns.
            rendered.append(
                RunbookQuery(f"logs[{index}]", "command", log.command, log.range, limit=log.limit)
            )
    return tuple(rendered)


def _render(
    name: str, language: Language, template: str, seconds: float, alert: Alert, limit: int | None = None
) -> RunbookQuery:
    try:
        query = render(template, alert.labels, language, annotations=alert.annotations)
    except RenderError as error:
        return RunbookQuery(name, language, template, seconds, error=str(error), limit=limit)
    return RunbookQuery(name, language, query, seconds, limit=limit)
