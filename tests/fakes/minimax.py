"""A fake MiniMax chat-completions endpoint on loopback, with MiniMax's traits.

It speaks `POST /v1/chat/completions` as the OpenAI SDK expects and behaves as MiniMax's M2 models do:
- the reasoning comes inside `<think>…</think>` in `content`, or in `reasoning_details` when the request sends
  `reasoning_split: true`;
- `temperature` outside (0, 1] and a wrong API key are answered with HTTP 200 and a `base_resp` error, no choices;
- `response_format` is accepted and ignored;
- more requests than `rpm` in a minute get HTTP 429 with `base_resp` 1002;
- scripted replies can be late, fail with any HTTP status or `base_resp` code, or call tools;
- `delay` makes every request slow, as a loaded model is; `calls`, `in_flight` and `peak_in_flight` count the
  chat-completions requests, and how many were being answered at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer

KEY = "sk-api-fake-minimax-key-0123456789"


@dataclass
class Reply:
    """One scripted answer. `content` is the answer text; `reasoning` the model's thinking."""

    content: str = ""
    reasoning: str = "The disk is filling; check the free ratio."
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    delay: float = 0.0
    http_status: int = 200
    base_resp: tuple[int, str] | None = None
    retry_after: float | None = None
    finish_reason: str | None = None
    no_choices: bool = False


Responder = Callable[[dict[str, Any]], Reply]


class FakeMiniMax(LoopbackServer):
    def __init__(self, key: str = KEY) -> None:
        self.key = key
        self.rpm: int | None = None
        self.replies: deque[Reply] = deque()
        self.responder: Responder | None = None  # used when no scripted reply is queued
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.delay = 0.0  # seconds every request waits before its reply's own delay
        self.calls = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()
        super().__init__()
        # A storm opens many connections at once; the default accept queue of 5 would make some wait a second
        # for a SYN to be sent again, which is the kernel's delay, not the model's.
        self._server.socket.listen(1024)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def answer(
        self, request: dict[str, Any], authorization: str
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """(HTTP status, headers, body) for one chat-completions request."""
        if authorization != f"Bearer {self.key}":
            return (
                200,
                {},
                _base_resp(1004, "login fail: Please carry the API secret key in the 'Authorization'"),
            )
        temperature = request.get("temperature", 1.0)
        if not 0 < float(temperature) <= 1:
            return 200, {}, _base_resp(2013, "invalid params, temperature must be in (0, 1]")
        if self._throttled():
            return 429, {"Retry-After": "1"}, _base_resp(1002, "rate limit exceeded(RPM)")
        reply = self._next(request)
        time.sleep(self.delay + reply.delay)
        if reply.http_status != 200:
            headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after is not None else {}
            code, message = reply.base_resp or (1000, "unknown error")
            return reply.http_status, headers, _base_resp(code, message)
        if reply.base_resp is not None:
            return 200, {}, _base_resp(*reply.base_resp)
        return 200, {}, self._completion(request, reply)

    def _next(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            if self.replies:
                return self.replies.popleft()
        if self.responder is not None:
            return self.responder(request)
        return Reply(content='{"summary": "nothing scripted"}')

    def _begin(self) -> None:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _throttled(self) -> bool:
        if self.rpm is None:
            return False
        with self._lock:
            now = time.monotonic()
            while self._stamps and now - self._stamps[0] > 60:
                self._stamps.popleft()
            if len(self._stamps) >= self.rpm:
                return True
            self._stamps.append(now)
            return False

    def _completion(self, request: dict[str, Any], reply: Reply) -> dict[str, Any]:
        split = bool(request.get("reasoning_split"))
        message: dict[str, Any] = {"role": "assistant", "name": "MiniMax AI"}
        if split:
            message["content"] = reply.content
            message["reasoning_details"] = [{"type": "reasoning.text", "id": "r-1", "text": reply.reasoning}]
        else:
            message["content"] = f"<think>\n{reply.reasoning}\n</think>\n\n{reply.content}"
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{index}_{time.monotonic_ns()}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
                for index, (name, arguments) in enumerate(reply.tool_calls)
            ]
        prompt = sum(len(str(item.get("content") or "")) for item in request.get("messages", [])) // 3
        completion = (len(message["content"]) + len(reply.reasoning)) // 3
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        return {
            "id": f"fake-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", ""),
            "choices": []
            if reply.no_choices
            else [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": len(reply.reasoning) // 3},
            },
            "input_sensitive": False,
            "output_sensitive": False,
            "base_resp": {"status_code": 0, "status_msg": ""},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {}, {"error": {"message": f"no route {self.path}"}})
                    return
                fake.requests.append(request)
                fake.headers.append({name.lower(): value for name, value in self.headers.items()})
                fake._begin()
                try:
                    self._send(*fake.answer(request, self.headers.get("Authorization", "")))
                finally:
                    fake._end()

            def _send(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
                raw = json.dumps(body, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: as a real server, carry on

            def log_message(self, *args: object) -> None:
                return None

        return Handler


def _base_resp(code: int, message: str) -> dict[str, Any]:
    return {"id": "", "choices": None, "base_resp": {"status_code": code, "status_msg": message}}
