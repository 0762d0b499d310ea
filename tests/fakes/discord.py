"""A fake Discord on loopback: the REST routes a bot uses for messages with buttons and for interactions, with
Discord's limits, its error bodies and its rate limits; and the signed interaction requests Discord would POST to an
app's endpoint (`press`, signed with the fake's own Ed25519 key).

- `Authorization: Bot <token>` is required on channel routes (401 otherwise); `forbidden` channels answer 403
  50013, unknown ones 404 10003.
- Messages over the limits (content 2,000, embeds, 5 rows of 5 buttons, custom_id 1–100 and unique, label 80)
  answer 400 50035 with Discord's `errors` tree.
- Every route's answer carries `X-RateLimit-Limit/-Remaining/-Reset/-Reset-After/-Bucket`; past `limit` requests
  in `window` seconds per bucket and major parameter it answers 429 with `retry_after` (`X-RateLimit-Scope: user`).
  `limit_globally(seconds)` makes every route answer a global 429 for that long. 401, 403 and 429 answers are
  counted in `invalid_requests`, as Discord counts them toward its IP ban.
- An interaction must be answered within 3 s of the press (404 10062 after), once (400 40060 again); its token
  edits `@original` for 15 minutes (404 10015 after, and before it is answered).
- `command(question, user_id, …)` is a slash command (`/aiops question: …`, type 2 APPLICATION_COMMAND) run in the
  channel, in a thread (`thread(message_id)` starts one from a message: it has the message's id) or in a DM. Its
  response (type 4, or 5 "thinking…") is the answer message, whose `@original` its token edits; `answered(id)`
  is that message as it now stands.
- `deliver(endpoint, headers, raw)` POSTs an interaction to the app's Interactions Endpoint URL, as Discord does,
  and takes a 200 answer as the interaction's response (`take_response`), as if it came through the callback route.

`clock` (seconds) is the fake's time, which a test moves by hand.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.fakes.loopback import LoopbackServer

BOT_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAx.fake.bot-token-Hq7Zr2Lw"
APPLICATION_ID = "1000000000000000001"
CHANNEL = "1100000000000000001"
GUILD = "1200000000000000001"
DM = "1500000000000000001"  # the bot's DM channel with a user
GUILD_TEXT, DM_CHANNEL, PUBLIC_THREAD = 0, 1, 11  # channel types
LOADING = 1 << 7  # message flag of a deferred answer ("thinking…")
Answer = tuple[int, dict[str, str], Any]
_ROUTES = [
    ("POST", re.compile(r"/api/v10/channels/(\d+)/messages"), "create"),
    ("PATCH", re.compile(r"/api/v10/channels/(\d+)/messages/(\d+)"), "edit"),
    ("POST", re.compile(r"/api/v10/interactions/(\d+)/([^/]+)/callback"), "callback"),
    ("PATCH", re.compile(r"/api/v10/webhooks/(\d+)/([^/]+)/messages/@original"), "original"),
]


@dataclass
class Window:
    started: float
    count: int = 0


@dataclass
class Pressed:
    token: str
    channel_id: str
    message_id: str | None  # a command's: None until it is answered
    at: float
    answer: dict[str, Any] | None = None


@dataclass
class Record:
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → the message as it stands
    edits: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (message id, body) per edit
    responses: list[dict[str, Any]] = field(default_factory=list)  # interaction responses, in order


class FakeDiscord(LoopbackServer):
    def __init__(self, clock: Callable[[], float] = time.time, limit: int = 5, window: float = 5.0) -> None:
        self.clock, self.limit, self.window = clock, limit, window
        self.channels = {CHANNEL, DM}
        self.forbidden: set[str] = set()
        self.record = Record()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.invalid_requests = 0
        self.global_until = 0.0
        self._key = Ed25519PrivateKey.generate()
        self._windows: dict[str, Window] = {}
        self._interactions: dict[str, Pressed] = {}
        self._ids = itertools.count(1300000000000000001)
        self._lock = threading.Lock()
        super().__init__()

    @property
    def public_key(self) -> str:
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    @property
    def api(self) -> str:
        return f"{self.url}/api/v10"

    def limit_globally(self, seconds: float) -> None:
        self.global_until = self.clock() + seconds

    # ---- interactions, as Discord POSTs them to the app

    def sign(self, raw: bytes, timestamp: str) -> dict[str, str]:
        signature = self._key.sign(timestamp.encode() + raw).hex()
        return {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": timestamp}

    def press(
        self, custom_id: str, user_id: str, message_id: str, *, in_guild: bool = True
    ) -> tuple[dict[str, str], bytes]:
        """`user_id` pressed the button `custom_id` on a message: the signed request's headers and raw body."""
        interaction_id, token = str(next(self._ids)), f"aW50ZXJhY3Rpb24{next(self._ids)}"
        self._interactions[interaction_id] = Pressed(token, CHANNEL, message_id, self.clock())
        user = {"id": user_id, "username": f"user{user_id[-4:]}"}
        body: dict[str, Any] = {
            "id": interaction_id,
            "application_id": APPLICATION_ID,
            "type": 3,
            "token": token,
            "version": 1,
            "channel_id": CHANNEL,
            "message": {"id": message_id, "channel_id": CHANNEL},
            "data": {"custom_id": custom_id, "component_type": 2},
        }
        body.update({"guild_id": GUILD, "member": {"user": user}} if in_guild else {"user": user})
        raw = json.dumps(body).encode()
        return self.sign(raw, str(int(self.clock()))), raw

    def command(
        self,
        question: str | None,
        user_id: str,
        *,
        in_guild: bool = True,
        channel_id: str = CHANNEL,
        name: str = "aiops",
    ) -> tuple[dict[str, str], bytes]:
        """`user_id` ran `/aiops question: <question>` (no option when None) in `channel_id` (a thread when
        `thread` started it), or in their DM with the bot: the signed request's headers and raw body."""
        interaction_id, token = str(next(self._ids)), f"Y29tbWFuZA{next(self._ids)}"
        where = channel_id if in_guild else DM
        self._interactions[interaction_id] = Pressed(token, where, None, self.clock())
        user = {"id": user_id, "username": f"user{user_id[-4:]}", "global_name": None}
        kind = GUILD_TEXT if in_guild else DM_CHANNEL
        if where != CHANNEL and in_guild:
            kind = PUBLIC_THREAD
        channel: dict[str, Any] = {"id": where, "type": kind}
        if kind == PUBLIC_THREAD:
            channel["parent_id"] = CHANNEL
        data: dict[str, Any] = {"id": "1600000000000000001", "name": name, "type": 1}
        if question is not None:
            data["options"] = [{"name": "question", "type": 3, "value": question}]
        body: dict[str, Any] = {
            "id": interaction_id,
            "application_id": APPLICATION_ID,
            "type": 2,
            "token": token,
            "version": 1,
            "channel_id": where,
            "channel": channel,
            "data": data,
            "locale": "en-US",
            "context": 0 if in_guild else 1,
        }
        body.update(
            {"guild_id": GUILD, "member": {"user": user, "roles": []}} if in_guild else {"user": user}
        )
        raw = json.dumps(body).encode()
        return self.sign(raw, str(int(self.clock()))), raw

    def thread(self, message_id: str) -> str:
        """Start a thread from a message: the thread's id is the message's."""
        assert message_id in self.record.messages, f"no message {message_id}"
        self.channels.add(message_id)
        return message_id

    def answered(self, interaction_id: str) -> dict[str, Any] | None:
        """A command's answer message as it now stands (None before it was answered)."""
        pressed = self._interactions[interaction_id]
        return None if pressed.message_id is None else self.record.messages[pressed.message_id]

    def take_response(self, raw: bytes, answer: dict[str, Any]) -> Answer:
        """The app's 200 answer to the interaction `raw`, taken as its response, as Discord takes it."""
        body = json.loads(raw)
        return self._callback(str(body["id"]), str(body.get("token")), answer)

    def deliver(self, endpoint: str, headers: dict[str, str], raw: bytes) -> httpx.Response:
        """POST an interaction to the app at `endpoint` and keep a 200 answer as its response. The fake's lock is
        held until then: an edit through the token that the app sends straight after its answer waits for it, as
        Discord has the answer before anything the app does next reaches it."""
        with self._lock:
            answer = httpx.post(endpoint, content=raw, headers=headers, timeout=10)
            if answer.status_code == 200 and answer.content:
                self.take_response(raw, answer.json())
        return answer

    def ping(self) -> tuple[dict[str, str], bytes]:
        raw = json.dumps({"id": str(next(self._ids)), "application_id": APPLICATION_ID, "type": 1}).encode()
        return self.sign(raw, str(int(self.clock()))), raw

    # ---- REST

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> Answer:
        self.requests.append((method, path))
        for verb, pattern, name in _ROUTES:
            match = pattern.fullmatch(path)
            if verb == method and match:
                return self._routed(name, match.groups(), headers, body)
        return 404, {}, {"message": "404: Not Found", "code": 0}

    def _routed(self, name: str, params: tuple[str, ...], headers: dict[str, str], body: Any) -> Answer:
        bucket = f"{name}-bucket"
        limited = self._rate_limited(bucket, params[0])
        if limited is not None:
            return limited
        rate = self._rate_headers(bucket, params[0])
        if name in ("create", "edit"):
            refused = self._refused(params[0], headers)
            if refused is not None:
                return refused[0], {**rate, **refused[1]}, refused[2]
        status, extra, answer = getattr(self, f"_{name}")(*params, body if isinstance(body, dict) else {})
        return status, {**rate, **extra}, answer

    def _refused(self, channel: str, headers: dict[str, str]) -> Answer | None:
        if headers.get("authorization") != f"Bot {BOT_TOKEN}":
            self.invalid_requests += 1
            return 401, {}, {"message": "401: Unauthorized", "code": 0}
        if channel not in self.channels:
            return 404, {}, {"message": "Unknown Channel", "code": 10003}
        if channel in self.forbidden:
            self.invalid_requests += 1
            return 403, {}, {"message": "Missing Permissions", "code": 50013}
        return None

    def _rate_limited(self, bucket: str, major: str) -> Answer | None:
        now = self.clock()
        if now < self.global_until:
            self.invalid_requests += 1
            retry = round(self.global_until - now, 3)
            headers = {
                "X-RateLimit-Global": "true",
                "X-RateLimit-Scope": "global",
                "Retry-After": str(math.ceil(retry)),
            }
            return (
                429,
                headers,
                {"message": "You are being rate limited.", "retry_after": retry, "global": True},
            )
        window = self._windows.setdefault(f"{bucket}:{major}", Window(now))
        if now >= window.started + self.window:
            window.started, window.count = now, 0
        window.count += 1
        if window.count <= self.limit:
            return None
        self.invalid_requests += 1
        retry = round(window.started + self.window - now, 3)
        headers = {
            **self._rate_headers(bucket, major),
            "X-RateLimit-Scope": "user",
            "Retry-After": str(math.ceil(retry)),
        }
        return 429, headers, {"message": "You are being rate limited.", "retry_after": retry, "global": False}

    def _rate_headers(self, bucket: str, major: str) -> dict[str, str]:
        window = self._windows[f"{bucket}:{major}"]
        reset_after = max(window.started + self.window - self.clock(), 0.0)
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.limit - window.count, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        }

    def _create(self, channel: str, body: dict[str, Any]) -> Answer:
        problems = dict(_problems(body))
        if not (body.get("content") or body.get("embeds") or body.get("components")):
            problems["content"] = "Cannot send an empty message"  # Discord's code for this is 50006
        if problems:
            return _invalid_form(problems)
        message_id = str(next(self._ids))
        self.record.messages[message_id] = {**body, "id": message_id, "channel_id": channel}
        return 200, {}, self.record.messages[message_id]

    def _edit(self, channel: str, message_id: str, body: dict[str, Any]) -> Answer:
        if message_id not in self.record.messages:
            return 404, {}, {"message": "Unknown Message", "code": 10008}
        problems = dict(_problems(body))
        if problems:
            return _invalid_form(problems)
        self.record.messages[message_id].update(body)
        self.record.edits.append((message_id, body))
        return 200, {}, self.record.messages[message_id]

    def _callback(self, interaction_id: str, token: str, body: dict[str, Any]) -> Answer:
        pressed = self._interactions.get(interaction_id)
        if pressed is None or pressed.token != token or self.clock() - pressed.at > 3.0:
            return 404, {}, {"message": "Unknown interaction", "code": 10062}
        if pressed.answer is not None:
            return 400, {}, {"message": "Interaction has already been acknowledged.", "code": 40060}
        problems = dict(_problems(body.get("data") or {}))
        if body.get("type") not in (1, 4, 5, 6, 7, 9) or problems:
            return _invalid_form(problems or {"type": "Value is not a valid interaction response type"})
        pressed.answer = body
        self.record.responses.append(body)
        if pressed.message_id is None:  # a command: its response is the answer message
            pressed.message_id = self._answer_message(pressed, body)
        elif body["type"] == 7:
            self.record.messages[pressed.message_id].update(body.get("data") or {})
        return 204, {}, None

    def _answer_message(self, pressed: Pressed, response: dict[str, Any]) -> str:
        message_id = str(next(self._ids))
        shown = (
            dict(response.get("data") or {}) if response["type"] == 4 else {"content": "", "flags": LOADING}
        )
        self.record.messages[message_id] = {**shown, "id": message_id, "channel_id": pressed.channel_id}
        return message_id

    def _original(self, application_id: str, token: str, body: dict[str, Any]) -> Answer:
        pressed = next((p for p in self._interactions.values() if p.token == token), None)
        if (
            application_id != APPLICATION_ID
            or pressed is None
            or pressed.answer is None
            or pressed.message_id is None
            or (self.clock() - pressed.at > 15 * 60)
        ):
            return 404, {}, {"message": "Unknown Webhook", "code": 10015}
        return self._edit(pressed.channel_id, pressed.message_id, body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                self._answer("POST")

            def do_PATCH(self) -> None:  # the name http.server calls
                self._answer("PATCH")

            def _answer(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                lowered = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    status, headers, answer = fake.answer(method, self.path, lowered, body)
                data = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        return Handler


def _invalid_form(problems: dict[str, str]) -> Answer:
    errors = {
        name: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": text}]} for name, text in problems.items()
    }
    return 400, {}, {"message": "Invalid Form Body", "code": 50035, "errors": errors}


def message_problems(body: dict[str, Any]) -> list[str]:
    """What Discord's form validation would refuse in a message body: `field: why`, none when it passes."""
    return [f"{name}: {why}" for name, why in _problems(body)]


def _problems(body: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if len(str(body.get("content") or "")) > 2000:
        yield "content", "Must be 2000 or fewer in length."
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        yield "embeds", "Must be 10 or fewer in length."
    for n, embed in enumerate(embeds):
        if len(str(embed.get("description") or "")) > 4096:
            yield f"embeds.{n}.description", "Must be 4096 or fewer in length."
        if len(str(embed.get("title") or "")) > 256:
            yield f"embeds.{n}.title", "Must be 256 or fewer in length."
    yield from _component_problems(body.get("components") or [])


def _component_problems(rows: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    if len(rows) > 5:
        yield "components", "Must be 5 or fewer in length."
    ids = []
    for n, row in enumerate(rows):
        buttons = row.get("components") or []
        if row.get("type") != 1 or not 1 <= len(buttons) <= 5:
            yield f"components.{n}", "An action row holds 1 to 5 buttons."
        for m, item in enumerate(buttons):
            where = f"components.{n}.components.{m}"
            if len(str(item.get("label") or "")) > 80:
                yield f"{where}.label", "Must be 80 or fewer in length."
            if item.get("style") == 5:
                if not item.get("url") or "custom_id" in item:
                    yield where, "A link button has a url and no custom_id."
                continue
            custom = str(item.get("custom_id") or "")
            if not 1 <= len(custom) <= 100:
                yield f"{where}.custom_id", "Must be between 1 and 100 in length."
            ids.append(custom)
    if len(set(ids)) != len(ids):
        yield "components", "Component custom id cannot be duplicated"
