"""A runbook's evidence queries rendered for one alert: what the sources run, what `runbooks match` shows."""

from __future__ import annotations

from aiops.models import Alert, RunbookQuery
from aiops.runbooks.model import Runbook
from aiops.runbooks.render import Language, RenderError, render


def render_queries(runbook: Runbook, alert: Alert) -> tuple[RunbookQuery, ...]:
    """Every metric and Loki query of `runbook` with the alert's labels; a refused one carries the reason."""
    templates: list[tuple[str, Language, str, float]] = [
        (metric.name, "promql", metric.query, metric.range) for metric in runbook.metrics
    ]
    templates += [
        (f"logs[{index}]", "logql", log.loki, log.range)
        for index, log in enumerate(runbook.logs)
        if log.loki is not None
    ]
    return tuple(
        _render(name, language, template, seconds, alert) for name, language, template, seconds in templates
    )


def _render(name: str, language: Language, template: str, seconds: float, alert: Alert) -> RunbookQuery:
    try:
        query = render(template, alert.labels, language, annotations=alert.annotations)
    except RenderError as error:
        return RunbookQuery(name, language, template, seconds, error=str(error))
    return RunbookQuery(name, language, query, seconds)
