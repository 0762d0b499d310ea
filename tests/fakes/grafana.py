"""A fake Grafana HTTP API on loopback: `POST /api/annotations` and `GET /api/annotations`, as Grafana answers them.

It checks the service account token (`Authorization: Bearer …`, 401 otherwise), refuses with 403 when `denied`
(the token's role lacks annotations:create), 400 for a body Grafana would not take, and filters a GET as Grafana
does: annotations with `time <= to` and `timeEnd >= from` carrying every asked tag. `outage = True` answers 503 to
everything, as Grafana behind a gateway does while it restarts; `hold` (seconds) delays the answer to the next POST
after the annotation is stored, so a client that gives up first has had its annotation written anyway.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackServer

TOKEN = "glsa_fakeGrafanaToken0123456789_ab12cd34"
PATH = "/api/annotations"


@dataclass(frozen=True)
class Request:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


class FakeGrafana(LoopbackServer):
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.outage = False
        self.denied = False
        self.hold = 0.0
        self.requests: list[Request] = []
        self.annotations: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__()

    def posts(self) -> list[Request]:
        return [request for request in self.requests if request.method == "POST"]

    def answer(self, request: Request) -> tuple[int, Any]:
        if self.outage:
            return 503, "<html><body><h1>503 Service Unavailable</h1></body></html>"
        if request.path != PATH:
            return 404, {"message": "Not found"}
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"message": "invalid API key", "traceID": ""}
        if self.denied:
            needed = "annotations:create" if request.method == "POST" else "annotations:read"
            return 403, {
                "accessErrorId": "ACE0123456789",
                "message": f"You'll need additional permissions to perform this action. Permissions needed: {needed}",
                "title": "Access denied",
            }
        return self._create(request.body) if request.method == "POST" else (200, self._find(request.query))

    def _create(self, body: Any) -> tuple[int, Any]:
        if not _valid(body):
            return 400, {"message": "bad request data"}
        with self._lock:
            annotation = {
                "id": len(self.annotations) + 1,
                "time": body["time"],
                "timeEnd": body.get("timeEnd", body["time"]),
                "tags": list(body.get("tags", [])),
                "text": body["text"],
                "dashboardUID": body.get("dashboardUID", ""),
            }
            self.annotations.append(annotation)
        return 200, {"message": "Annotation added", "id": annotation["id"]}

    def _find(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        start, end = int(query.get("from", ["0"])[0]), int(query.get("to", ["0"])[0])
        wanted = set(query.get("tags", []))
        limit = int(query.get("limit", ["100"])[0])
        with self._lock:
            found = [
                item
                for item in self.annotations
                if (not (start and end) or (item["time"] <= end and item["timeEnd"] >= start))
                and wanted <= set(item["tags"])
            ]
        return sorted(found, key=lambda item: -item["time"])[:limit]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server calls
                self._serve(None)

            def do_POST(self) -> None:  # the name http.server calls
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                self._serve(body)

            def _serve(self, body: Any) -> None:
                parts = urlsplit(self.path)
                request = Request(
                    self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body
                )
                fake.requests.append(request)
                status, answer = fake.answer(request)
                if request.method == "POST" and fake.hold:
                    hold, fake.hold = fake.hold, 0.0
                    time.sleep(hold)
                self._send(status, answer)

            def _send(self, status: int, body: Any) -> None:
                text = isinstance(body, str)
                raw = body.encode() if text else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/html" if text else "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (`hold`)

            def log_message(self, *args: object) -> None:
                return None

        return Handler


def _valid(body: Any) -> bool:
    """What Grafana's API takes: integer milliseconds, a list of string tags, a text."""
    if not isinstance(body, dict) or not isinstance(body.get("time"), int):
        return False
    if "timeEnd" in body and (not isinstance(body["timeEnd"], int) or body["timeEnd"] < body["time"]):
        return False
    tags = body.get("tags", [])
    return (
        isinstance(tags, list)
        and all(isinstance(tag, str) for tag in tags)
        and isinstance(body.get("text"), str)
    )
