"""A fake Prometheus HTTP API on loopback: answers `/api/v1/query_range` as Prometheus does, optionally late.

Used where the real Prometheus cannot be steered (an answer that arrives late, an error of a given kind).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackServer


class FakePrometheus(LoopbackServer):
    def __init__(self) -> None:
        self.delay = 0.0
        self.requests: list[dict[str, str]] = []
        self.error: tuple[int, str, str] | None = None  # (HTTP status, errorType, error)
        self.series: list[dict[str, Any]] = [
            {"metric": {"instance": "web-1:9100", "mountpoint": "/"}, "values": None}
        ]
        # Recorded answers: (pattern searched in the query, series with absolute [time, "value"] points).
        # When any are set, a query matching none of them has an empty result, as a real query with no data.
        self.recorded: list[tuple[re.Pattern[str], list[dict[str, Any]]]] = []
        self.received = threading.Event()
        super().__init__()

    def answer(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.error is not None:
            status, kind, message = self.error
            return status, {"status": "error", "errorType": kind, "error": message}
        start, end = float(query["start"]), float(query["end"])
        step = float(query["step"].rstrip("s"))
        if self.recorded:
            return 200, _matrix(_replayed(self.recorded, query["query"], start, end, step))
        result = []
        for item in self.series:
            values = item["values"] or _ramp(start, end, step)
            result.append({"metric": item["metric"], "values": values})
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server calls
                parts = urlsplit(self.path)
                query = {key: values[0] for key, values in parse_qs(parts.query).items()}
                fake.requests.append({"path": parts.path, **query})
                fake.received.set()
                time.sleep(fake.delay)
                status, body = fake.answer(query) if parts.path == "/api/v1/query_range" else (404, {})
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                return None

        return Handler


def _ramp(start: float, end: float, step: float) -> list[list[Any]]:
    """A series that climbs steadily from 10 to 95 across the window: a disk filling up."""
    count = max(2, int((end - start) / step) + 1)
    return [[start + i * step, str(10 + 85 * i / (count - 1))] for i in range(count)]


def _matrix(result: list[dict[str, Any]]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def _replayed(
    recorded: list[tuple[re.Pattern[str], list[dict[str, Any]]]],
    query: str,
    start: float,
    end: float,
    step: float,
) -> list[dict[str, Any]]:
    """The recorded series of the first pattern found in the query, resampled as Prometheus would at `step`."""
    series = next((found for pattern, found in recorded if pattern.search(query)), [])
    result = []
    for item in series:
        points = [(float(t), v) for t, v in item["values"]]
        sampled = []
        moment = start
        while moment <= end:
            # The latest recorded point at or before the evaluation time, within Prometheus's 5-minute lookback.
            before = [v for t, v in points if moment - 300 <= t <= moment]
            if before:
                sampled.append([moment, before[-1]])
            moment += step
        if sampled:
            result.append({"metric": item["metric"], "values": sampled})
    return result
