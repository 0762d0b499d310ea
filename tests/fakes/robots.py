"""Fake Feishu and DingTalk custom group robots on loopback, refusing what the real ones refuse.

Each checks as the platforms document: the webhook token, the signature and its one-hour
clock window, the 20,000-byte body limit and the robot's rate limits; the Feishu one also checks the card JSON 2.0
rules of a custom robot's card (schema "2.0", no `tag: action`, buttons that only open URLs). Accepted messages are
kept in `messages`, every answer in `answers`. `outage = True` makes a robot answer HTTP 503 as a failing gateway
would. `clock` (seconds since the epoch) lets a test move time forward instead of sleeping.

Codes the sheet does not give are marked "not verified" below: they are what third parties report, or a
placeholder the channels treat like any other refusal.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackServer

MAX_BODY = 20_000
WINDOW = 3600.0  # how far a signature's timestamp may be from the robot's clock
TOKEN = "robot-token-Jk29sQ"


class Clock:
    """A clock a test moves by hand: `clock()` is now, in seconds since the epoch."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _Robot(LoopbackServer):
    """What both fakes share: the loopback server, the outage switch and the record of messages and answers."""

    def __init__(self, secret: str | None, clock: Callable[[], float]) -> None:
        self.secret = secret
        self.clock = clock
        self.outage = False
        self.outage_until = 0.0  # on the fake's clock: answers 5xx until then
        self.messages: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self._sent: deque[float] = deque()  # when each accepted message arrived, for the rate limits
        self._lock = threading.Lock()
        super().__init__()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, path: str, query: dict[str, str], raw: bytes) -> dict[str, Any]:
        raise NotImplementedError

    def sent_within(self, seconds: float) -> int:
        """Messages accepted in the last `seconds`, now included."""
        now = self.clock()
        return sum(1 for moment in self._sent if now - seconds < moment <= now)

    def accept(self, message: dict[str, Any]) -> None:
        self._sent.append(self.clock())
        self.messages.append(message)

    @property
    def arrivals(self) -> list[float]:
        """When each accepted message arrived, on the fake's clock."""
        return list(self._sent)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if fake.outage or fake.clock() < fake.outage_until:
                    self._reply(
                        503, b"<html><body>503 Service Temporarily Unavailable</body></html>", "text/html"
                    )
                    return
                parts = urlsplit(self.path)
                query = {
                    key: values[0] for key, values in parse_qs(parts.query, keep_blank_values=True).items()
                }
                with fake._lock:
                    answer = fake.answer(parts.path, query, raw)
                    fake.answers.append(answer)
                self._reply(200, json.dumps(answer).encode(), "application/json")

            def _reply(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        return Handler


class FakeFeishuRobot(_Robot):
    """`POST /open-apis/bot/v2/hook/<token>` with `{"timestamp", "sign", "msg_type", "card"|"content"}`."""

    per_second = 5
    per_minute = 100

    @property
    def url(self) -> str:
        return f"{self.address}/open-apis/bot/v2/hook/{TOKEN}"

    def answer(self, path: str, query: dict[str, str], raw: bytes) -> dict[str, Any]:
        if path != f"/open-apis/bot/v2/hook/{TOKEN}":
            return _feishu(19001, "param invalid: incoming webhook access token invalid")
        if len(raw) > MAX_BODY:  # code and text as third parties report them (not verified)
            return _feishu(19036, "The message exceeds the size limit")
        message = _json_object(raw)
        if message is None:
            return _feishu(19001, "param invalid: body is not a JSON object")  # not verified
        if self.secret is not None and not self._signed(message):
            return _feishu(19021, "sign match fail or timestamp is not within one hour from current time")
        if self.sent_within(1) >= self.per_second:
            return _feishu(9499, "too many request")
        if self.sent_within(60) >= self.per_minute:
            return _feishu(11232, "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]")
        problem = feishu_card_problem(message)
        if problem is not None:
            return _feishu(
                200861, problem
            )  # 200861 is reported for `tag: action`; for the rest, not verified
        self.accept(message)
        return {"code": 0, "msg": "success", "data": {}}

    def _signed(self, message: dict[str, Any]) -> bool:
        assert self.secret is not None
        timestamp, signature = str(message.get("timestamp", "")), message.get("sign")
        if not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > WINDOW:
            return False
        key = f"{timestamp}\n{self.secret}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        return isinstance(signature, str) and hmac.compare_digest(signature, expected)


def feishu_card_problem(message: dict[str, Any]) -> str | None:
    """Why a custom robot's message breaks the card rules, or None. Only card JSON 2.0 is accepted here."""
    if message.get("msg_type") != "interactive":
        return None if message.get("msg_type") in ("text", "post", "image", "share_chat") else "bad msg_type"
    card = message.get("card")
    if not isinstance(card, dict):
        return "card must be a JSON object, not a string"
    if card.get("schema") != "2.0":
        return 'card must declare "schema": "2.0"'
    if "elements" in card or not isinstance(card.get("body", {}).get("elements"), list):
        return "card JSON 2.0 puts its elements under body"
    for node in _nodes(card):
        if node.get("tag") == "action":
            return "unsupported tag action"
        if node.get("tag") == "markdown" and not isinstance(node.get("content"), str):
            return "markdown content must be a string"
        for behavior in node.get("behaviors", []):
            if behavior.get("type") != "open_url" or not behavior.get("default_url"):
                return "a custom robot's card may only open URLs: no callback interactions"
    return None


class FakeDingTalkRobot(_Robot):
    """`POST /robot/send?access_token=<token>&timestamp=<ms>&sign=<urlencoded>` with `{"msgtype", ...}`."""

    per_minute = 20
    throttle = 600.0  # how long a robot that went over its rate stays throttled

    def __init__(self, secret: str | None, clock: Callable[[], float]) -> None:
        super().__init__(secret, clock)
        self.throttled_until = 0.0

    @property
    def url(self) -> str:
        return f"{self.address}/robot/send?access_token={TOKEN}"

    def answer(self, path: str, query: dict[str, str], raw: bytes) -> dict[str, Any]:
        if path != "/robot/send" or query.get("access_token") != TOKEN:
            return _dingtalk(300001, "token is not exist")  # not verified
        if len(raw) > MAX_BODY:
            return _dingtalk(460101, "description: body 大小不合法;solution:请保持大小在 20000bytes 以内;")
        if self.secret is not None and not self._signed(query):
            return _dingtalk(310000, "sign not match or invalid timestamp")
        if self.clock() < self.throttled_until or self.sent_within(60) >= self.per_minute:
            self.throttled_until = max(self.throttled_until, self.clock() + self.throttle)
            return _dingtalk(130101, "send too fast, exceed 20 times per minute")
        message = _json_object(raw)
        problem = "body is not a JSON object" if message is None else dingtalk_message_problem(message)
        if problem is not None or message is None:
            return _dingtalk(40035, f"缺少参数 json: {problem}")  # not verified
        self.accept(message)
        return {"errcode": 0, "errmsg": "ok"}

    def _signed(self, query: dict[str, str]) -> bool:
        # `query` is already URL-decoded, as a real server decodes it: a sign sent without URL-encoding loses its
        # "+" to a space here and fails, as it does against DingTalk.
        assert self.secret is not None
        timestamp, signature = query.get("timestamp", ""), query.get("sign")
        if not timestamp.isdigit() or abs(self.clock() * 1000 - int(timestamp)) > WINDOW * 1000:
            return False
        digest = hmac.new(
            self.secret.encode(), f"{timestamp}\n{self.secret}".encode(), hashlib.sha256
        ).digest()
        return isinstance(signature, str) and hmac.compare_digest(
            signature, base64.b64encode(digest).decode()
        )


def dingtalk_message_problem(message: dict[str, Any]) -> str | None:
    """Why a robot message is malformed, or None."""
    kind = message.get("msgtype")
    if kind in ("text", "link", "feedCard"):
        return None
    if kind not in ("markdown", "actionCard"):
        return f"unknown msgtype {kind!r}"
    content = message.get(kind)
    if not isinstance(content, dict) or not all(isinstance(content.get(k), str) for k in ("title", "text")):
        return f"{kind} needs a title and a text"
    for button in content.get("btns", []):
        if not (isinstance(button.get("title"), str) and str(button.get("actionURL", "")).startswith("http")):
            return "each button needs a title and an actionURL"
    if content.get("btnOrientation", "0") not in ("0", "1"):
        return "btnOrientation is 0 or 1"
    at = message.get("at", {})
    if not all(isinstance(at.get(k, []), list) for k in ("atMobiles", "atUserIds")):
        return "at.atMobiles and at.atUserIds are lists"
    return None


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object inside `value`, at any depth."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _nodes(item)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _feishu(code: int, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": {}}


def _dingtalk(code: int, msg: str) -> dict[str, Any]:
    return {"errcode": code, "errmsg": msg}
