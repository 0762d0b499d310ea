"""Prometheus evidence against a loopback server speaking Prometheus's HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from aiops.models import Alert, Correlation, Incident, RunbookMatch, RunbookQuery
from aiops.sources.prometheus import PrometheusConfig, PrometheusSource, alert_expression, summarise, trend
from tests.fakes.prometheus import FakePrometheus

EXPR = "(node_filesystem_avail_bytes * 100) / node_filesystem_size_bytes < 10"
URL = "http://prometheus:9090/graph?g0.expr=%28node_filesystem_avail_bytes+%2A+100%29+%2F+node_filesystem_size_bytes+%3C+10&g0.tab=1"
NO_RUNBOOK = RunbookMatch(None, None, "none")


def correlation(generator_url: str = URL, starts: datetime | None = None) -> Correlation:
    now = datetime.now(UTC)
    alert = Alert(
        "f1",
        "firing",
        {"alertname": "HostOutOfDiskSpace"},
        {},
        starts or now - timedelta(minutes=5),
        None,
        generator_url,
    )
    incident = Incident(1, "g", "open", "t", "warning", {}, now, now)
    return Correlation(incident, "opened", (alert,), (alert,))


async def gather(fake: FakePrometheus, **config: object) -> list:  # type: ignore[type-arg]
    async with httpx.AsyncClient() as client:
        source = PrometheusSource(PrometheusConfig(url=fake.url, **config), client)  # type: ignore[arg-type]
        return await source.gather(correlation(), NO_RUNBOOK)


def test_expression_comes_from_generator_url() -> None:
    assert alert_expression(correlation().alerts[0]) == EXPR
    assert alert_expression(correlation("").alerts[0]) is None
    assert alert_expression(correlation("http://x/graph?g0.tab=1").alerts[0]) is None


async def test_alert_expression_is_summarised(fake_prometheus: FakePrometheus) -> None:
    [evidence] = await gather(fake_prometheus)
    assert evidence.error is None and evidence.query == EXPR
    [series] = evidence.series
    assert (series.min, series.max, series.last, series.trend) == (10.0, 95.0, 95.0, "rising")
    assert series.points <= 121
    request = fake_prometheus.requests[0]
    assert request["query"] == EXPR
    window = float(request["end"]) - float(request["start"])
    assert window / float(request["step"].rstrip("s")) <= 120
    assert float(request["start"]) <= correlation().alerts[0].starts_at.timestamp() - 3600 + 5


async def test_many_series_are_reduced(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.series = [
        {"metric": {"instance": f"h{n}"}, "values": [[1, str(n)], [2, str(n)]]} for n in range(12)
    ]
    [evidence] = await gather(fake_prometheus, top_series=3)
    assert [s.labels["instance"] for s in evidence.series] == ["h11", "h10", "h9"]
    assert evidence.omitted_series == 9


async def test_query_errors_are_reported(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.error = (400, "bad_data", 'parse error at char 5: unexpected "}"')
    [evidence] = await gather(fake_prometheus)
    assert str(evidence.error) == (
        'Prometheus refused the query (HTTP 400, bad_data): parse error at char 5: unexpected "}"'
    )


async def test_a_slow_prometheus_times_out(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.delay = 2
    [evidence] = await gather(fake_prometheus, timeout="300ms")
    assert str(evidence.error) == "Prometheus did not answer within 0.3s"


async def test_an_unreachable_prometheus() -> None:
    async with httpx.AsyncClient() as client:
        source = PrometheusSource(PrometheusConfig(url="http://127.0.0.1:9"), client)
        [evidence] = await source.gather(correlation(), NO_RUNBOOK)
    assert evidence.error is not None and str(evidence.error).startswith(
        "Prometheus at http://127.0.0.1:9 is unreachable"
    )


def test_summary_skips_nan() -> None:
    summary = summarise({}, [[1, "NaN"], [2, "3"], [3, "+Inf"], [4, "1"]])
    assert (summary.points, summary.min, summary.max, summary.last) == (4, 1.0, 3.0, 1.0)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([1, 2, 3, 4], "rising"), ([4, 3, 2, 1], "falling"), ([5, 5, 5], "flat"), ([1, 9, 1, 9, 1], "flat")],
)
def test_trend(values: list[float], expected: str) -> None:
    assert trend([(float(t), float(v)) for t, v in enumerate(values)]) == expected


async def test_the_runbook_queries_are_evidence_too(fake_prometheus: FakePrometheus) -> None:
    runbook = RunbookMatch(
        "disk.md",
        "abc",
        "file name",
        queries=(
            RunbookQuery(
                "free_ratio", "promql", 'node_filesystem_avail_bytes{instance="web-1:9100"}', 6 * 3600
            ),
            RunbookQuery("logs[0]", "logql", '{instance="web-1:9100"}', 3600),
            RunbookQuery(
                "bad", "promql", "up{instance={{ labels.instance }}}", 3600, error="stands outside a string"
            ),
        ),
    )
    async with httpx.AsyncClient() as client:
        source = PrometheusSource(PrometheusConfig(url=fake_prometheus.url), client)
        own, free, bad = await source.gather(correlation(), runbook)
    assert own.query == EXPR
    assert (free.title, free.error, free.series[0].max) == ("disk.md: free_ratio", None, 95.0)
    assert free.window_end is not None and free.window_start is not None
    assert (free.window_end - free.window_start).total_seconds() == 6 * 3600
    assert str(bad.error) == "refused: stands outside a string" and not bad.series
    assert [r["query"] for r in fake_prometheus.requests].count(
        'node_filesystem_avail_bytes{instance="web-1:9100"}'
    ) == 1
    assert len(fake_prometheus.requests) == 2, "the LogQL query is not Prometheus's to run"
