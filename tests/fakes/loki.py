"""A fake Loki HTTP API on loopback: answers `/loki/api/v1/query_range` as Loki does, optionally late or failing.

Answers are registered per query: `add(pattern, result)` answers every LogQL query that `pattern` matches
(`re.search`; the first registered match wins) with `result`, Loki's own `data.result` list, so answers
recorded from a real Loki can be loaded as they are. Unmatched queries get an empty streams result.
Like Loki, it keeps only entries with `start <= timestamp < end` and, for streams, the `limit` newest
(`direction=backward`) or oldest (`forward`) entries across all streams.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackServer

PATH = "/loki/api/v1/query_range"
ResultType = Literal["streams", "matrix"]


@dataclass(frozen=True)
class Request:
    """One request as the fake received it."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True)
class Answer:
    pattern: re.Pattern[str]
    result_type: ResultType
    result: list[dict[str, Any]]


class FakeLoki(LoopbackServer):
    def __init__(self) -> None:
        self.delay = 0.0
        self.requests: list[Request] = []
        # (HTTP status, body): a str is sent as text/plain, as Loki sends query errors; anything else as JSON.
        self.error: tuple[int, Any] | None = None
        self.answers: list[Answer] = []
        super().__init__()

    def add(self, pattern: str, result: list[dict[str, Any]], result_type: ResultType = "streams") -> None:
        """Answer queries matching `pattern` with `result` (Loki's `data.result`); earlier patterns win."""
        self.answers.append(Answer(re.compile(pattern), result_type, result))

    def answer(self, params: dict[str, str]) -> tuple[int, Any]:
        if self.error is not None:
            return self.error
        found = next((a for a in self.answers if a.pattern.search(params.get("query", ""))), None)
        result_type, result = (found.result_type, found.result) if found else ("streams", [])
        start, end = int(params.get("start", 0)), int(params.get("end", time.time_ns()))
        if result_type == "matrix":
            result = _matrix_within(result, start / 1e9, end / 1e9)
        else:
            backward = params.get("direction", "backward") == "backward"
            result = _streams_within(result, start, end, int(params.get("limit", 100)), backward)
        return 200, {"status": "success", "data": {"resultType": result_type, "result": result}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server calls
                parts = urlsplit(self.path)
                params = {key: values[0] for key, values in parse_qs(parts.query).items()}
                fake.requests.append(Request(parts.path, params, dict(self.headers.items())))
                time.sleep(fake.delay)
                status, body = fake.answer(params) if parts.path == PATH else (404, "404 page not found\n")
                self._send(status, body)

            def _send(self, status: int, body: Any) -> None:
                text = isinstance(body, str)
                raw = body.encode() if text else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8" if text else "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                return None

        return Handler


def _streams_within(
    streams: list[dict[str, Any]], start: int, end: int, limit: int, backward: bool
) -> list[dict[str, Any]]:
    """The `limit` entries nearest the chosen end of the window, regrouped by stream in the asked order."""
    entries = [
        (int(ns), index, line)
        for index, stream in enumerate(streams)
        for ns, line in stream["values"]
        if start <= int(ns) < end
    ]
    kept = sorted(entries, key=lambda entry: entry[0], reverse=backward)[:limit]
    result = []
    for index, stream in enumerate(streams):
        values = [[str(ns), line] for ns, i, line in kept if i == index]
        if values:
            result.append({"stream": stream["stream"], "values": values})
    return result


def _matrix_within(series: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [
        {"metric": item["metric"], "values": [[t, v] for t, v in item["values"] if start <= float(t) <= end]}
        for item in series
    ]


def stream(labels: dict[str, str], entries: list[tuple[int, str]]) -> dict[str, Any]:
    """A stream as Loki's answer writes it, from (nanosecond timestamp, line) pairs."""
    return {"stream": labels, "values": [[str(ns), line] for ns, line in entries]}
