"""Loki evidence: the runbook's LogQL queries over the window before an alert fired, folded for a reader.

Log lines are redacted and folded into templates with counts (`aiops.logtext`), so the model sees
`×128  Connection refused to <IP>:<NUM>` and the few most recent distinct lines instead of 500 raw ones.
A LogQL metric query (`sum(rate({job="x"} |= "error" [5m]))`) is summarised as the Prometheus source does.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import ConfigDict, Field, SecretStr

from aiops.i18n import message
from aiops.logtext import REDACTED, LogSummary, compress, redact_lines
from aiops.models import Correlation, Evidence, Message, RunbookMatch, RunbookQuery, SeriesSummary, Text
from aiops.proxy import Proxied
from aiops.sources.prometheus import summarise, without_credentials
from aiops.units import HttpUrl, Seconds

_PATH = "/loki/api/v1/query_range"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
VERBATIM_LINES = 40  # up to this many lines are shown one by one, not folded
_TEMPLATES = 15  # the most frequent templates shown; the prompt shows at most 40 lines of an item
_RECENT = 5  # the most recent distinct lines shown after the templates
_LINE_CHARS = 300
_ERROR_CHARS = 300
_TOP_SERIES = 5
# Lines that differ only in words with a digit (times, addresses, ids) count as one when picking recent lines.
_VARYING = re.compile(r"[\w.:+-]*\d[\w.:+-]*")


class LokiConfig(Proxied):
    """The `loki:` section: where Loki answers and how much of it one query reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl | None = None
    tenant: str | None = None  # sent as X-Scope-OrgID, for a multi-tenant Loki
    bearer_token: SecretStr | None = None
    timeout: Seconds = 10.0
    limit: int = Field(default=500, ge=1, le=5000)  # lines per query when the runbook does not say
    # How far past the alert's startsAt the window ends: the logs that led up to it and a little after.
    after: Seconds = 900.0


class LokiError(Exception):
    """Loki could not answer; `reason` says why in terms an operator can act on."""

    def __init__(self, reason: Message) -> None:
        super().__init__(str(reason))
        self.reason = reason


@dataclass(frozen=True)
class LogEntry:
    """One log line and its Loki timestamp in nanoseconds."""

    ns: int
    line: str

    @property
    def at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.ns // 1000)


@dataclass(frozen=True)
class LokiAnswer:
    """A query_range result: log entries of every stream merged oldest first, or a metric query's series."""

    entries: tuple[LogEntry, ...] = ()
    streams: int = 0
    series: tuple[SeriesSummary, ...] = ()


class LokiSource:
    """Runs the matched runbook's `logql` queries against Loki's HTTP API."""

    name = "loki"

    def __init__(self, config: LokiConfig, client: httpx.AsyncClient) -> None:
        self._config = config
        self._client = client

    async def gather(self, correlation: Correlation, runbook: RunbookMatch) -> list[Evidence]:
        """One evidence item per LogQL query of the runbook, all queried at once."""
        alerts = correlation.new_firing or correlation.alerts
        anchor = min(alert.starts_at for alert in alerts)
        pending = [
            self.run_query(query, anchor, runbook.path or "")
            for query in runbook.queries
            if query.language == "logql"
        ]
        return list(await asyncio.gather(*pending))

    async def run_query(self, query: RunbookQuery, anchor: datetime, path: str) -> Evidence:
        """One LogQL query over `query.range` seconds ending `after` past `anchor` (or now), as evidence.

        Never raises for Loki's failures: they are the evidence's `error`. Fits the investigator's `logql` tool.
        """
        title = f"{path}: {query.name}"
        if query.error is not None:
            return Evidence(self.name, title, query.query, error=message("query_refused", detail=query.error))
        end = datetime.fromtimestamp(min(time.time(), anchor.timestamp() + self._config.after), UTC)
        start = end - timedelta(seconds=query.range)
        limit = query.limit or self._config.limit
        empty = Evidence(self.name, title, query.query, window_start=start, window_end=end)
        try:
            answer = await self.query_range(query.query, start, end, limit)
        except LokiError as error:
            return replace(empty, error=self._scrub(error.reason))
        return _filled(empty, answer, limit)

    async def query_range(self, query: str, start: datetime, end: datetime, limit: int) -> LokiAnswer:
        """`/loki/api/v1/query_range`: the newest `limit` entries of the window, returned oldest first."""
        params = {
            "query": query,
            "start": nanoseconds(start),
            "end": nanoseconds(end),
            "limit": limit,
            "direction": "backward",  # when the limit cuts, keep the lines nearest the alert
        }
        return _answer(await self._get(params))

    async def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        if self._config.url is None:
            raise LokiError(message("loki_no_url"))
        try:
            response = await self._client.get(
                self._config.url + _PATH, params=params, headers=self._headers(), timeout=self._config.timeout
            )
        except httpx.TimeoutException:
            raise LokiError(message("loki_timeout", seconds=self._config.timeout)) from None
        except httpx.HTTPError as error:
            where = without_credentials(self._config.url)
            raise LokiError(message("loki_unreachable", detail=error, url=where)) from None
        return _data(response)

    def _headers(self) -> dict[str, str]:
        headers = {}
        if self._config.tenant:
            headers["X-Scope-OrgID"] = self._config.tenant
        if self._config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self._config.bearer_token.get_secret_value()}"
        return headers

    def _scrub(self, reason: Message) -> Message:
        # Loki or a proxy in front of it may echo the request back; the configured secrets never leave here.
        token = self._config.bearer_token.get_secret_value() if self._config.bearer_token else None
        password = urlsplit(self._config.url).password if self._config.url else None
        english, detail = reason.english, reason.detail
        for secret in (token, password):
            if secret:
                english = english.replace(secret, REDACTED)
                detail = detail.replace(secret, REDACTED) if detail else detail
        return replace(reason, english=english, detail=detail)


def nanoseconds(moment: datetime) -> int:
    """A timezone-aware datetime as the nanosecond Unix epoch Loki expects, without float rounding."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _data(response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    if status >= 400:
        raise LokiError(message(_HINTS.get(status, "loki_http"), detail=_detail(response), status=status))
    try:
        body = response.json()
    except ValueError:
        raise LokiError(message("loki_not_json", detail=_detail(response), status=status)) from None
    if not isinstance(body, dict) or body.get("status") != "success":
        raise LokiError(message("loki_refused", detail=_detail(response)))
    data = body.get("data")
    return data if isinstance(data, dict) else {}


# What to check for an HTTP status, as the message that says it.
_HINTS = {401: "loki_http_auth", 403: "loki_http_auth", 404: "loki_http_not_found", 429: "loki_http_rate"}


def _detail(response: httpx.Response) -> str:
    """Loki's own words: the `error` or `message` of a JSON body, else the body's text, on one short line."""
    text = " ".join((_json_message(response) or response.text).split()) or "no error message"
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


def _json_message(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    return next((body[key] for key in ("error", "message") if isinstance(body.get(key), str)), None)


def _answer(data: dict[str, Any]) -> LokiAnswer:
    kind, result = data.get("resultType"), data.get("result")
    if not isinstance(result, list):
        raise LokiError(message("loki_no_result"))
    try:
        if kind == "streams":
            return LokiAnswer(_merged(result), streams=len(result))
        if kind == "matrix":
            return LokiAnswer(series=tuple(summarise(item["metric"], item["values"]) for item in result))
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise LokiError(
            message("loki_malformed", detail=f"{type(error).__name__}: {error}", kind=str(kind))
        ) from None
    raise LokiError(message("loki_result_type", kind=repr(kind)))


def _merged(streams: Sequence[dict[str, Any]]) -> tuple[LogEntry, ...]:
    entries = [LogEntry(int(ns), str(line)) for stream in streams for ns, line in stream["values"]]
    return tuple(sorted(entries, key=lambda entry: entry.ns))


def _filled(empty: Evidence, answer: LokiAnswer, limit: int) -> Evidence:
    ranked = sorted(answer.series, key=lambda summary: summary.max, reverse=True)
    keep = tuple(ranked[:_TOP_SERIES])
    lines = log_lines(answer.entries, answer.streams, limit)
    return replace(empty, series=keep, omitted_series=len(ranked) - len(keep), lines=lines)


def log_lines(entries: Sequence[LogEntry], streams: int, limit: int) -> tuple[Text, ...]:
    """Entries (oldest first) as evidence lines: a heading, the templates with counts, the recent lines.

    The heading comes first because a prompt short of room keeps only an item's first lines.
    """
    if not entries:
        return ()
    redacted = list(redact_lines(entry.line for entry in entries))
    if len(entries) <= VERBATIM_LINES:
        # A few lines are read as they are: folding would mask the values (dates, ids) they carry.
        heading = message("loki_heading", lines=_lines(len(entries)), streams=_streams(streams))
        return (
            heading,
            *(
                f"{entry.at:%H:%M:%SZ}  {_one_line(line)}"
                for entry, line in zip(entries, redacted, strict=True)
            ),
        )
    summary = compress(redacted, max_templates=_TEMPLATES)
    return (
        _heading(summary, len(entries), streams, limit),
        *(template.render() for template in summary.templates),
        *(
            [message("log_more_templates", count=summary.omitted_templates)]
            if summary.omitted_templates
            else []
        ),
        *_recent(entries, redacted),
    )


def _heading(summary: LogSummary, read: int, streams: int, limit: int) -> Message:
    templates = message("loki_templates", count=len(summary.templates) + summary.omitted_templates)
    names = {"lines": _lines(read), "streams": _streams(streams), "templates": templates}
    if read >= limit:
        return message("loki_heading_folded_limit", **names, limit=limit)
    return message("loki_heading_folded", **names)


def _lines(count: int) -> Message:
    return message("loki_lines", count=count)


def _streams(count: int) -> Message:
    return message("loki_streams", count=count)


def _recent(entries: Sequence[LogEntry], redacted: Sequence[str]) -> list[Text]:
    """The newest `_RECENT` lines that differ in more than their varying words, oldest first, with their time."""
    shapes: set[str] = set()
    recent: list[Text] = []
    for entry, line in zip(reversed(entries), reversed(redacted), strict=True):
        if len(recent) == _RECENT:
            break
        shape = _VARYING.sub("#", line)
        if line.strip() and shape not in shapes:
            shapes.add(shape)
            recent.append(f"{entry.at:%H:%M:%S}Z  {_one_line(line)}")
    return [message("loki_recent"), *reversed(recent)] if recent else []


def _one_line(text: str) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= _LINE_CHARS else text[: _LINE_CHARS - 1] + "…"
