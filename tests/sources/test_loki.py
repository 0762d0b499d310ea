"""Loki evidence against a loopback server speaking Loki's HTTP API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from aiops.models import Alert, Correlation, Evidence, Incident, RunbookMatch, RunbookQuery
from aiops.sources.loki import LokiConfig, LokiSource, nanoseconds
from tests.fakes.loki import FakeLoki, stream

TOKEN = "loki-Gq71sTm3Xc9Vb2Lp"
ERRORS = '{job="api"} |= "error"'
SECOND = 10**9


@pytest.fixture
def fake_loki() -> Iterator[FakeLoki]:
    fake = FakeLoki().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def starts() -> datetime:
    """An alert that fired an hour ago, so the window ends at a known time: startsAt + `after`."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def correlation(starts: datetime) -> Correlation:
    alert = Alert("f1", "firing", {"alertname": "ApiErrors", "job": "api"}, {}, starts, None, "")
    later = Alert(
        "f2", "firing", {"alertname": "ApiErrors", "job": "api"}, {}, starts + timedelta(minutes=3), None, ""
    )
    incident = Incident(1, "g", "open", "t", "warning", {}, starts, starts)
    return Correlation(incident, "opened", (later, alert), (later, alert))


def runbook(*queries: RunbookQuery) -> RunbookMatch:
    return RunbookMatch(
        "api.md", "abc", "file name", queries=queries or (RunbookQuery("errors", "logql", ERRORS, 600),)
    )


def inside(starts: datetime) -> datetime:
    """A moment in the window of a 10-minute query, [startsAt + 5m, startsAt + 15m)."""
    return starts + timedelta(minutes=6)


def lines_at(starts: datetime, lines: list[str], every: float = 0.1) -> list[tuple[int, str]]:
    """`lines` one after another, the first a minute into the window."""
    first = nanoseconds(inside(starts))
    return [(first + int(i * every * SECOND), line) for i, line in enumerate(lines)]


async def gather(
    fake: FakeLoki, starts: datetime, match: RunbookMatch | None = None, **config: Any
) -> list[Evidence]:
    async with httpx.AsyncClient() as client:
        source = LokiSource(LokiConfig(url=config.pop("url", fake.url), **config), client)
        return await source.gather(correlation(starts), match or runbook())


async def test_the_request_is_what_loki_expects(fake_loki: FakeLoki, starts: datetime) -> None:
    queries = (
        RunbookQuery("errors", "logql", ERRORS, 600),
        RunbookQuery("few", "logql", '{job="db"}', 60, limit=20),
    )
    errors, few = await gather(fake_loki, starts, runbook(*queries), tenant="team-a", bearer_token=TOKEN)
    end = nanoseconds(starts + timedelta(seconds=900))  # the earliest startsAt + `after`
    by_query = {request.params["query"]: request for request in fake_loki.requests}
    request = by_query[ERRORS]
    assert request.path == "/loki/api/v1/query_range"
    assert request.params == {
        "query": ERRORS,
        "start": str(end - 600 * SECOND),
        "end": str(end),
        "limit": "500",
        "direction": "backward",
    }
    assert request.headers["X-Scope-OrgID"] == "team-a"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert by_query['{job="db"}'].params["limit"] == "20"
    assert (errors.source, errors.title, errors.query, errors.error) == (
        "loki",
        "api.md: errors",
        ERRORS,
        None,
    )
    assert errors.window_end == starts + timedelta(seconds=900)
    assert errors.window_start == starts + timedelta(seconds=300)
    assert few.title == "api.md: few" and few.lines == ()


async def test_the_window_ends_now_for_a_recent_alert(fake_loki: FakeLoki) -> None:
    just_now = datetime.now(UTC) - timedelta(seconds=30)
    [evidence] = await gather(fake_loki, just_now)
    assert evidence.window_end is not None
    assert abs(evidence.window_end.timestamp() - time.time()) < 5


async def test_no_headers_without_tenant_or_token(fake_loki: FakeLoki, starts: datetime) -> None:
    await gather(fake_loki, starts)
    [request] = fake_loki.requests
    assert "X-Scope-OrgID" not in request.headers and "Authorization" not in request.headers


async def test_repeated_lines_are_folded_with_counts(fake_loki: FakeLoki, starts: datetime) -> None:
    refused = [f"dial tcp 10.0.{n % 7}.{n % 200}:5432: connect: connection refused" for n in range(1000)]
    lines = [*refused[:500], "pool exhausted: 64 of 64 connections busy", *refused[500:]]
    fake_loki.add(r'job="api"', [stream({"job": "api"}, lines_at(starts, lines))])
    [evidence] = await gather(fake_loki, starts, limit=5000)
    assert evidence.error is None
    heading, first, second, *rest = map(str, evidence.lines)
    assert heading == "1001 lines from 1 stream, 2 templates"
    assert first.startswith("×1000  dial tcp <IP>:<NUM>: connect: connection refused")
    assert (
        second
        == '×1  pool exhausted: <NUM> of <NUM> connections busy  (e.g. "pool exhausted: 64 of 64 connections busy")'
    )
    # The newest line of each shape, oldest first: the pool line, then the last refused connection.
    assert [line.split("  ", 1)[1] for line in rest[1:]] == [lines[500], lines[1000]]
    assert rest[0] == "most recent distinct lines:" and len(rest) == 3


async def test_streams_are_merged_oldest_first(fake_loki: FakeLoki, starts: datetime) -> None:
    at = nanoseconds(inside(starts))
    fake_loki.add(
        r"api",
        [
            stream(
                {"pod": "api-1"},
                [(at + 3 * SECOND, "third: retry gave up"), (at + 1 * SECOND, "first: timeout")],
            ),
            stream({"pod": "api-2"}, [(at + 2 * SECOND, "second: upstream reset")]),
        ],
    )
    [evidence] = await gather(fake_loki, starts)
    recent = evidence.lines[1:]  # few lines: shown one by one, not folded
    clock = [f"{inside(starts) + timedelta(seconds=n):%H:%M:%S}Z" for n in (1, 2, 3)]
    assert recent == (
        f"{clock[0]}  first: timeout",
        f"{clock[1]}  second: upstream reset",
        f"{clock[2]}  third: retry gave up",
    )
    assert str(evidence.lines[0]) == "3 lines from 2 streams"


async def test_secrets_in_log_lines_are_redacted(fake_loki: FakeLoki, starts: datetime) -> None:
    lines = [
        "login failed for bob password=hunter2",
        "upstream call with Authorization: Bearer abcdefghijklmnop0123456789",
        "-----BEGIN RSA PRIVATE KEY-----",
        "MIIEpAIBAAKCAQEA1xq3ZyQ8c0w",
        "-----END RSA PRIVATE KEY-----",
    ]
    fake_loki.add(r"api", [stream({"job": "api"}, lines_at(starts, lines))])
    [evidence] = await gather(fake_loki, starts)
    text = "\n".join(map(str, evidence.lines))
    for secret in ("hunter2", "abcdefghijklmnop0123456789", "MIIEpAIBAAKCAQEA1xq3ZyQ8c0w"):
        assert secret not in text
    assert "password=«redacted»" in text and "Authorization: Bearer «redacted»" in text


async def test_reaching_the_limit_is_said(fake_loki: FakeLoki, starts: datetime) -> None:
    lines = [f"request {n} failed: upstream timeout" for n in range(600)]
    fake_loki.add(r"api", [stream({"job": "api"}, lines_at(starts, lines))])
    [evidence] = await gather(fake_loki, starts)
    assert fake_loki.requests[0].params["limit"] == "500"
    assert (
        str(evidence.lines[0])
        == "500 lines from 1 stream, 1 template; limit of 500 lines reached: older lines not read"
    )
    assert evidence.lines[-1].endswith("request 599 failed: upstream timeout"), (
        "backward: the newest lines are kept"
    )


async def test_lines_outside_the_window_are_not_read(fake_loki: FakeLoki, starts: datetime) -> None:
    end = nanoseconds(starts + timedelta(seconds=900))
    fake_loki.add(
        r"api", [stream({"job": "api"}, [(end - 700 * SECOND, "too early"), (end + SECOND, "too late")])]
    )
    [evidence] = await gather(fake_loki, starts)
    assert evidence.error is None and evidence.lines == ()


async def test_a_refused_query_is_not_sent(fake_loki: FakeLoki, starts: datetime) -> None:
    refused = RunbookQuery("bad", "logql", '{job="{{ labels.job }}"}', 600, error="label job is not a string")
    promql = RunbookQuery("cpu", "promql", "up", 600)
    [evidence] = await gather(fake_loki, starts, runbook(refused, promql))
    assert (evidence.title, str(evidence.error)) == ("api.md: bad", "refused: label job is not a string")
    assert fake_loki.requests == []


async def test_no_logql_queries_no_evidence(fake_loki: FakeLoki, starts: datetime) -> None:
    assert await gather(fake_loki, starts, RunbookMatch(None, None, "no runbook matched")) == []
    assert fake_loki.requests == []


async def test_queries_run_concurrently(fake_loki: FakeLoki, starts: datetime) -> None:
    fake_loki.delay = 0.5
    queries = tuple(RunbookQuery(f"q{n}", "logql", f'{{job="j{n}"}}', 600) for n in range(4))
    began = time.monotonic()
    found = await gather(fake_loki, starts, runbook(*queries))
    assert [item.title for item in found] == ["api.md: q0", "api.md: q1", "api.md: q2", "api.md: q3"]
    assert time.monotonic() - began < 1.5


async def test_a_metric_query_is_summarised(fake_loki: FakeLoki, starts: datetime) -> None:
    first = inside(starts).timestamp()
    rate = 'sum by (pod) (rate({job="api"} |= "error" [5m]))'
    fake_loki.add(
        r"^sum by \(pod\)",
        [
            {"metric": {"pod": f"api-{n}"}, "values": [[first + 60 * i, str(n * i)] for i in range(5)]}
            for n in range(8)
        ],
        result_type="matrix",
    )
    [evidence] = await gather(fake_loki, starts, runbook(RunbookQuery("error rate", "logql", rate, 600)))
    assert evidence.error is None and evidence.lines == ()
    assert [s.labels["pod"] for s in evidence.series] == ["api-7", "api-6", "api-5", "api-4", "api-3"]
    assert evidence.omitted_series == 3
    top = evidence.series[0]
    assert (top.points, top.min, top.max, top.last, top.trend) == (5, 0.0, 28.0, 28.0, "rising")


async def test_loki_error_text_is_surfaced(fake_loki: FakeLoki, starts: datetime) -> None:
    fake_loki.error = (400, "parse error at line 1, col 16: syntax error: unexpected IDENTIFIER\n")
    [evidence] = await gather(fake_loki, starts)
    assert (
        str(evidence.error)
        == "Loki answered HTTP 400: parse error at line 1, col 16: syntax error: unexpected IDENTIFIER"
    )
    assert evidence.window_start is not None


async def test_a_long_error_is_cut(fake_loki: FakeLoki, starts: datetime) -> None:
    fake_loki.error = (500, {"status": "error", "errorType": "internal", "error": "rpc error: " + "x" * 1000})
    [evidence] = await gather(fake_loki, starts)
    assert evidence.error is not None and str(evidence.error).startswith(
        "Loki answered HTTP 500: rpc error: xxx"
    )
    assert len(str(evidence.error)) < 360 and str(evidence.error).endswith("…")


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "check loki.bearer_token and loki.tenant"),
        (404, "check loki.url"),
        (429, "Loki is rate limiting"),
    ],
)
async def test_http_errors_say_what_to_check(
    fake_loki: FakeLoki, starts: datetime, status: int, hint: str
) -> None:
    fake_loki.error = (status, "no org id\n")
    [evidence] = await gather(fake_loki, starts)
    assert (
        evidence.error is not None
        and hint in str(evidence.error)
        and str(evidence.error).endswith(": no org id")
    )


async def test_a_loki_status_error_is_surfaced(fake_loki: FakeLoki, starts: datetime) -> None:
    fake_loki.error = (
        200,
        {"status": "error", "errorType": "bad_data", "error": "max entries limit exceeded"},
    )
    [evidence] = await gather(fake_loki, starts)
    assert str(evidence.error) == "Loki refused the query: max entries limit exceeded"


async def test_a_body_that_is_not_json(fake_loki: FakeLoki, starts: datetime) -> None:
    fake_loki.error = (200, "<html><body>Sign in to continue</body></html>")
    [evidence] = await gather(fake_loki, starts)
    assert str(evidence.error) == (
        "Loki answered HTTP 200 with a body that is not JSON: <html><body>Sign in to continue</body></html>"
    )


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"resultType": "vector", "result": []}, "resultType 'vector'"),
        ({"resultType": "streams", "result": [{"stream": {}}]}, "streams answer is malformed"),
        ({"resultType": "streams"}, "no data.result list"),
    ],
)
async def test_an_answer_of_the_wrong_shape(
    fake_loki: FakeLoki, starts: datetime, data: Any, says: str
) -> None:
    fake_loki.error = (200, {"status": "success", "data": data})
    [evidence] = await gather(fake_loki, starts)
    assert evidence.error is not None and says in str(evidence.error)


async def test_a_slow_loki_times_out(fake_loki: FakeLoki, starts: datetime) -> None:
    fake_loki.delay = 2
    [evidence] = await gather(fake_loki, starts, timeout="300ms")
    assert str(evidence.error) == "Loki did not answer within 0.3s (loki.timeout)"


async def test_an_unreachable_loki(starts: datetime) -> None:
    async with httpx.AsyncClient() as client:
        source = LokiSource(LokiConfig(url=f"http://reader:{TOKEN}@127.0.0.1:9"), client)
        [evidence] = await source.gather(correlation(starts), runbook())
    assert evidence.error is not None
    assert str(evidence.error).startswith("Loki at http://127.0.0.1:9 is unreachable (check loki.url): ")
    assert TOKEN not in str(evidence.error)


async def test_an_unconfigured_loki(starts: datetime) -> None:
    async with httpx.AsyncClient() as client:
        [evidence] = await LokiSource(LokiConfig(), client).gather(correlation(starts), runbook())
    assert evidence.error is not None and str(evidence.error).startswith("loki.url is not configured")


async def test_the_bearer_token_never_appears_in_errors(fake_loki: FakeLoki, starts: datetime) -> None:
    # A proxy that echoes the request's headers in its error page.
    fake_loki.error = (403, f"forbidden: Authorization: Bearer {TOKEN} is not allowed for tenant team-a")
    [evidence] = await gather(fake_loki, starts, bearer_token=TOKEN, tenant="team-a")
    assert fake_loki.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert evidence.error is not None and TOKEN not in str(evidence.error)
    assert "forbidden: Authorization: Bearer «redacted» is not allowed" in str(evidence.error)


def test_config_limits() -> None:
    assert (LokiConfig().limit, LokiConfig().after, LokiConfig().timeout) == (500, 900.0, 10.0)
    assert LokiConfig.model_validate({"after": "5m", "timeout": "2s"}).after == 300.0
    for bad in ({"limit": 0}, {"limit": 5001}, {"url": "loki:3100"}, {"tenant_id": "x"}):
        with pytest.raises(ValueError):
            LokiConfig.model_validate(bad)
    assert TOKEN not in repr(LokiConfig.model_validate({"bearer_token": TOKEN}))
