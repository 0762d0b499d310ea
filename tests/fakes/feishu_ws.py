"""A fake of Feishu's long-connection gateway, for lark-oapi's `ws.Client`.

What the client does, and what this fake checks:
- `POST {domain}/callback/ws/endpoint` with `{"AppID", "AppSecret"}` (served by `FakeFeishu`, which hands the body to
  `endpoint`): a wrong app id or secret gets a non-zero code (the SDK raises a ClientException), the right ones a
  `wss://…?device_id=…&service_id=…` URL (here ws:// on loopback, with a one-time ticket) and the client's settings;
- a WebSocket to that URL: without a valid ticket the handshake is refused with Feishu's `handshake-status` headers;
- protobuf frames (`pbbp2.Frame`, from the SDK's own generated module — the wire format is the protocol): the
  client pings (a CONTROL frame), the gateway answers pong; a callback travels as a DATA frame with the headers
  `type: event`, `message_id`, `trace_id`, `sum`, `seq`, its payload the callback's plain JSON, and comes back as the
  same frame whose payload is `{"code": 200, "data": base64(JSON answer)}`. A payload may be split over several
  frames (`sum` > 1), which the client must put together.

Feishu shows the clicker an error when the answer takes over 3 seconds; `send` reports how long it took.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lark_oapi.ws.pb.pbbp2_pb2 import Frame  # type: ignore[import-untyped]
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

CONTROL, DATA = 0, 1
SERVICE_ID = 33554678
CLIENT_CONFIG = {"PingInterval": 120, "ReconnectCount": -1, "ReconnectInterval": 1, "ReconnectNonce": 0}


@dataclass(frozen=True)
class Answer:
    """What the client sent back for one callback."""

    code: int
    body: dict[str, Any] | None  # the handler's answer, decoded
    seconds: float


class FakeLongConnection:
    def __init__(self, app_id: str, app_secret: str) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.endpoint_requests = 0
        self.connections = 0  # WebSockets opened, ever
        self.refused_handshakes = 0
        self.pings = 0
        self._tickets: set[str] = set()
        self._open: set[ServerConnection] = set()
        self._waiting: dict[str, asyncio.Future[Frame]] = {}
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-feishu-ws", daemon=True)

    def start(self) -> FakeLongConnection:
        self._thread.start()
        self._server = self._call(self._listen())
        return self

    async def _listen(self) -> Server:
        return await serve(self._serve, "127.0.0.1", 0, process_request=self._handshake, ping_interval=None)

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._call(self._server.wait_closed())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def endpoint(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        """The answer to `POST /callback/ws/endpoint`."""
        self.endpoint_requests += 1
        if body.get("AppID") != self.app_id or body.get("AppSecret") != self.app_secret:
            return 200, {}, {"code": 10014, "msg": "app secret invalid", "data": None}
        ticket = secrets.token_hex(12)
        self._tickets.add(ticket)
        url = f"ws://127.0.0.1:{self.port}/ws/v2?device_id={secrets.token_hex(6)}&service_id={SERVICE_ID}"
        return (
            200,
            {},
            {
                "code": 0,
                "msg": "ok",
                "data": {"URL": f"{url}&ticket={ticket}", "ClientConfig": CLIENT_CONFIG},
            },
        )

    def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._open:
            if time.monotonic() > deadline:
                raise AssertionError(f"the client did not connect within {timeout}s")
            time.sleep(0.02)

    def send(self, payload: dict[str, Any], *, parts: int = 1, timeout: float = 10.0) -> Answer:
        """Push one callback (split over `parts` frames) and wait for the client's answer."""
        started = time.monotonic()
        frame = self._call(self._push(json.dumps(payload).encode(), parts), timeout)
        answer = json.loads(frame.payload)
        data = answer.get("data")
        body = json.loads(base64.b64decode(data)) if data else None
        return Answer(int(answer["code"]), body, time.monotonic() - started)

    def drop(self) -> None:
        """Close every connection, as the gateway does when it restarts."""
        for connection in list(self._open):
            self._loop.call_soon_threadsafe(asyncio.ensure_future, connection.close())

    def _call(self, coroutine: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlsplit(request.path).query)
        ticket = query.get("ticket", [""])[0]
        if ticket in self._tickets and query.get("device_id") and query.get("service_id"):
            self._tickets.discard(ticket)
            return None
        self.refused_handshakes += 1
        headers = Headers({"handshake-status": "403", "handshake-msg": "invalid ticket"})
        return Response(403, "Forbidden", headers, b"")

    async def _serve(self, connection: ServerConnection) -> None:
        self.connections += 1
        self._open.add(connection)
        try:
            async for message in connection:
                await self._receive(connection, message)
        except Exception:  # the client went away: as the real gateway, forget the connection
            pass
        finally:
            self._open.discard(connection)

    async def _receive(self, connection: ServerConnection, message: str | bytes) -> None:
        frame = Frame()
        frame.ParseFromString(message)
        kind = _header(frame, "type")
        if frame.method == CONTROL and kind == "ping":
            self.pings += 1
            pong = _frame(CONTROL, {"type": "pong"}, json.dumps(CLIENT_CONFIG).encode())
            await connection.send(pong.SerializeToString())
        elif frame.method == DATA:
            waiting = self._waiting.pop(_header(frame, "message_id"), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(frame)

    async def _push(self, payload: bytes, parts: int) -> Frame:
        if not self._open:
            raise AssertionError("no client is connected")
        connection = next(iter(self._open))
        message_id = f"msg_{secrets.token_hex(8)}"
        answered: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = answered
        size = -(-len(payload) // parts)
        for seq in range(parts):
            headers = {
                "type": "event",
                "message_id": message_id,
                "trace_id": secrets.token_hex(8),
                "sum": str(parts),
                "seq": str(seq),
            }
            chunk = payload[seq * size : (seq + 1) * size]
            await connection.send(_frame(DATA, headers, chunk).SerializeToString())
        return await answered


def _frame(method: int, headers: dict[str, str], payload: bytes) -> Frame:
    frame = Frame()
    frame.SeqID, frame.LogID, frame.service, frame.method = 0, 0, SERVICE_ID, method
    for key, value in headers.items():
        header = frame.headers.add()
        header.key, header.value = key, value
    frame.payload = payload
    return frame


def _header(frame: Frame, key: str) -> str:
    return next((h.value for h in frame.headers if h.key == key), "")
