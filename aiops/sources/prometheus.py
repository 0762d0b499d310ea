"""Prometheus evidence: the alert's own expression over a window around the time it fired, summarised.

Speaks Prometheus's HTTP API with httpx rather than wrapping the synchronous prometheus-api-client in threads:
one async client, real deadlines, and nothing blocking the event loop.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import ConfigDict, Field, SecretStr

from aiops.i18n import message
from aiops.models import (
    Alert,
    Correlation,
    Evidence,
    Message,
    RunbookMatch,
    RunbookQuery,
    SeriesSummary,
    Text,
    Trend,
)
from aiops.proxy import Proxied
from aiops.units import HttpUrl, Seconds

# Relative change across the window, as a share of the series' spread, below which a series counts as flat.
_FLAT = 0.2


class PrometheusConfig(Proxied):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl | None = None
    bearer_token: SecretStr | None = None
    timeout: Seconds = 10.0
    # The window evaluated around an alert's startsAt.
    before: Seconds = 3600.0
    after: Seconds = 900.0
    max_points: int = Field(default=120, ge=10, le=11000)
    top_series: int = Field(default=5, ge=1, le=50)


class PrometheusError(Exception):
    """Prometheus could not answer; `reason` says why in terms an operator can act on."""

    def __init__(self, reason: Message) -> None:
        super().__init__(str(reason))
        self.reason = reason


class PrometheusSource:
    name = "prometheus"

    def __init__(self, config: PrometheusConfig, client: httpx.AsyncClient) -> None:
        self._config = config
        self._client = client

    async def gather(self, correlation: Correlation, runbook: RunbookMatch) -> list[Evidence]:
        """The alerts' own expressions around the time they fired, then the runbook's PromQL queries."""
        alerts = correlation.new_firing or correlation.alerts
        pending = [
            self._evaluate(
                message("evidence_alert_expression", alert=members[0].name),
                expression,
                *self._window(members),
            )
            for expression, members in _by_expression(alerts).items()
        ]
        anchor = min(alert.starts_at for alert in alerts)
        pending += [
            self.run_query(query, anchor, runbook.path or "")
            for query in runbook.queries
            if query.language == "promql"
        ]
        return list(await asyncio.gather(*pending))

    async def run_query(self, query: RunbookQuery, anchor: datetime, path: str) -> Evidence:
        """One PromQL query (a runbook's, or the investigation's) over its range, ending `after` past `anchor`."""
        title = f"{path}: {query.name}"
        if query.error is not None:
            return Evidence(self.name, title, query.query, error=message("query_refused", detail=query.error))
        end = datetime.fromtimestamp(min(time.time(), anchor.timestamp() + self._config.after), UTC)
        return await self._evaluate(title, query.query, end - timedelta(seconds=query.range), end)

    async def _evaluate(self, title: Text, expression: str, start: datetime, end: datetime) -> Evidence:
        try:
            series = await self.query_range(expression, start, end)
        except PrometheusError as error:
            return Evidence(
                self.name, title, expression, window_start=start, window_end=end, error=error.reason
            )
        ranked = sorted(series, key=lambda summary: summary.max, reverse=True)
        keep = ranked[: self._config.top_series]
        return Evidence(
            self.name,
            title,
            expression,
            tuple(keep),
            len(ranked) - len(keep),
            window_start=start,
            window_end=end,
        )

    def _window(self, alerts: Sequence[Alert]) -> tuple[datetime, datetime]:
        first = min(alert.starts_at for alert in alerts).timestamp()
        last = max(alert.starts_at for alert in alerts).timestamp()
        end = min(time.time(), last + self._config.after)
        start = min(first - self._config.before, end - 60)
        return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)

    async def query_range(self, query: str, start: datetime, end: datetime) -> list[SeriesSummary]:
        """`/api/v1/query_range` with a step that keeps each series near `max_points` points, summarised."""
        seconds = max(1.0, end.timestamp() - start.timestamp())
        step = max(1, math.ceil(seconds / self._config.max_points))
        params = {"query": query, "start": start.timestamp(), "end": end.timestamp(), "step": f"{step}s"}
        data = await self._get("/api/v1/query_range", params)
        return [summarise(item.get("metric", {}), item.get("values", [])) for item in data.get("result", [])]

    async def instant(self, query: str) -> list[tuple[dict[str, str], float]]:
        """`/api/v1/query` now: each series's labels and value (a vector; a scalar has no labels)."""
        data = await self._get("/api/v1/query", {"query": query})
        result = data.get("result", [])
        if data.get("resultType") == "scalar":
            return [({}, float(result[1]))]
        return [(dict(item.get("metric", {})), float(item.get("value", [0, "nan"])[1])) for item in result]

    async def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        if self._config.url is None:
            raise PrometheusError(message("prometheus_no_url"))
        headers = {}
        if self._config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self._config.bearer_token.get_secret_value()}"
        try:
            response = await self._client.get(
                self._config.url + path, params=params, headers=headers, timeout=self._config.timeout
            )
        except httpx.TimeoutException:
            raise PrometheusError(message("prometheus_timeout", seconds=self._config.timeout)) from None
        except httpx.HTTPError as error:
            where = without_credentials(self._config.url)
            raise PrometheusError(message("prometheus_unreachable", detail=error, url=where)) from None
        return _data(response)


def _data(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise PrometheusError(message("prometheus_not_json", status=response.status_code)) from None
    if not isinstance(body, dict) or body.get("status") != "success":
        detail = body.get("error", "no error message") if isinstance(body, dict) else "unexpected body"
        kind = body.get("errorType", "error") if isinstance(body, dict) else "error"
        said = message("prometheus_refused", detail=detail, status=response.status_code, kind=str(kind))
        raise PrometheusError(said)
    data = body.get("data")
    return data if isinstance(data, dict) else {}


def without_credentials(url: str) -> str:
    """The URL as it may be shown: `https://user:password@host/` → `https://host/`."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    return parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")).geturl()


def alert_expression(alert: Alert) -> str | None:
    """The PromQL of the rule that fired, from the `g0.expr` parameter of Prometheus's generatorURL."""
    return expression_of(alert.generator_url)


def expression_of(generator_url: str | None) -> str | None:
    """The `g0.expr` of a Prometheus generatorURL."""
    if not generator_url:
        return None
    values = parse_qs(urlsplit(generator_url).query).get("g0.expr")
    return values[0].strip() if values and values[0].strip() else None


def _by_expression(alerts: Sequence[Alert]) -> dict[str, list[Alert]]:
    groups: dict[str, list[Alert]] = {}
    for alert in alerts:
        expression = alert_expression(alert)
        if expression is not None:
            groups.setdefault(expression, []).append(alert)
    return groups


def summarise(labels: dict[str, str], values: Sequence[Sequence[Any]]) -> SeriesSummary:
    """min, max, mean, last and trend of one series; NaN and infinite samples are left out."""
    points = [(float(t), float(v)) for t, v in values]
    finite = [(t, v) for t, v in points if math.isfinite(v)]
    if not finite:
        nan = math.nan
        return SeriesSummary(dict(labels), len(points), nan, nan, nan, nan, "flat")
    numbers = [v for _, v in finite]
    return SeriesSummary(
        labels=dict(labels),
        points=len(points),
        min=min(numbers),
        max=max(numbers),
        mean=sum(numbers) / len(numbers),
        last=numbers[-1],
        trend=trend(finite),
        first_at=datetime.fromtimestamp(points[0][0], UTC),
        last_at=datetime.fromtimestamp(points[-1][0], UTC),
    )


def trend(points: Sequence[tuple[float, float]]) -> Trend:
    """Least-squares slope across the window, compared with the series' spread."""
    spread = max(v for _, v in points) - min(v for _, v in points)
    if len(points) < 2 or spread == 0:
        return "flat"
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in points)
    variance = sum((t - mean_t) ** 2 for t, _ in points)
    change = covariance / variance * (points[-1][0] - points[0][0])
    if change > _FLAT * spread:
        return "rising"
    if change < -_FLAT * spread:
        return "falling"
    return "flat"
