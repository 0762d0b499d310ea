"""A fake Feishu Open API on loopback, and a sender of Feishu's card callbacks.

`FakeFeishu` answers what the app bot channel calls, with Feishu's traits:
- `POST /open-apis/auth/v3/tenant_access_token/internal` checks app_id and app_secret (10014 otherwise) and hands out
  a tenant access token that expires in two hours;
- `POST /open-apis/im/v1/messages?receive_id_type=chat_id` wants that token as a bearer (99991663 otherwise), the
  chat the bot is in (230002), and an interactive card whose `content` is a JSON *string* holding card JSON 2.0:
  `schema: "2.0"`, no `tag: action` anywhere, no attribute 2.0 does not know, at most 30 KB (230099 otherwise);
  one message per `uuid`;
- `PATCH /open-apis/im/v1/messages/{message_id}` replaces the card, keeping every version;
- `fail(...)` scripts the next answers of the message API: a rate limit (HTTP 429, 99991400, x-ogw-ratelimit-reset),
  an internal error (HTTP 500) or a gateway's HTML page (HTTP 502).

Each fake has an app_id of its own, so that no token or message of one test meets another's.

`FeishuCallbacks` builds what Feishu POSTs to the callback URL: `card.action.trigger` (schema 2.0) and
`url_verification` payloads, encrypted and signed as Feishu does when the app has an Encrypt Key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from Crypto.Cipher import AES
from Crypto.Util.Padding import pad

from tests.fakes.loopback import LoopbackServer

if TYPE_CHECKING:
    from tests.fakes.feishu_ws import FakeLongConnection

SECRET = "fake-feishu-app-secret-0123456789"
CHAT = "oc_fake0123456789abcdef"
MAX_CARD = 30 * 1024
TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
MESSAGES_PATH = "/open-apis/im/v1/messages"
ENDPOINT_PATH = "/callback/ws/endpoint"  # the long connection's URL, answered by tests/fakes/feishu_ws.py
# What card JSON 2.0 accepts on each element this service uses; anything else is an error in 2.0.
ALLOWED: dict[str, set[str]] = {
    "markdown": {"tag", "element_id", "content", "text_align", "text_size", "margin", "icon"},
    "hr": {"tag", "element_id", "margin"},
    "div": {"tag", "element_id", "text", "margin", "icon"},
    "plain_text": {"tag", "content", "text_size", "text_color", "text_align", "lines"},
    "column_set": {
        "tag",
        "element_id",
        "flex_mode",
        "columns",
        "horizontal_spacing",
        "background_style",
        "margin",
    },
    "column": {"tag", "element_id", "width", "weight", "elements", "vertical_align", "background_style"},
    "button": {"tag", "element_id", "type", "text", "behaviors", "confirm", "size", "width", "disabled"},
}


@dataclass
class Failure:
    kind: str  # "rate_limit", "server_error" or "bad_gateway"
    reset: int = 3  # x-ogw-ratelimit-reset, seconds


class FakeFeishu(LoopbackServer):
    def __init__(self, app_secret: str = SECRET, chat_id: str = CHAT) -> None:
        self.app_id = f"cli_fake{secrets.token_hex(6)}"
        self.app_secret = app_secret
        self.chat_id = chat_id
        self.token_delay = 0.0
        self.token_requests = 0
        self.tokens: set[str] = set()
        self.messages: dict[str, list[dict[str, Any]]] = {}  # message_id → every version of its card
        self.refusals: list[str] = []  # why cards were refused
        self.failures: deque[Failure] = deque()
        self._uuids: dict[str, str] = {}
        self._lock = threading.Lock()
        self.gateway: FakeLongConnection | None = None  # set to serve the long connection's endpoint
        super().__init__()

    def fail(self, kind: str, times: int = 1, reset: int = 3) -> None:
        self.failures.extend(Failure(kind, reset) for _ in range(times))

    def revoke_tokens(self) -> None:
        """Every token handed out so far becomes invalid (as after the app secret is reset)."""
        self.tokens.clear()

    def answer(
        self, method: str, path: str, authorization: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, str], Any]:
        """(HTTP status, headers, JSON body) for one request."""
        parts = urlsplit(path)
        if method == "POST" and parts.path == TOKEN_PATH:
            return self._token(body)
        if method == "POST" and parts.path == ENDPOINT_PATH and self.gateway is not None:
            return self.gateway.endpoint(body)
        if not parts.path.startswith(MESSAGES_PATH):
            return 404, {}, {"code": 404, "msg": f"no route {parts.path}"}
        if self.failures:
            return _failure(self.failures.popleft())
        if authorization.removeprefix("Bearer ") not in self.tokens:
            return 400, {}, {"code": 99991663, "msg": "Invalid access token for authorization."}
        if method == "POST" and parts.path == MESSAGES_PATH:
            return self._create(parse_qs(parts.query).get("receive_id_type", [""])[0], body)
        if method == "PATCH":
            return self._patch(parts.path.removeprefix(MESSAGES_PATH + "/"), body)
        return 404, {}, {"code": 404, "msg": f"no route {method} {parts.path}"}

    def _token(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        time.sleep(self.token_delay)
        self.token_requests += 1
        if body.get("app_id") != self.app_id:
            return 400, {}, {"code": 10003, "msg": "invalid param: app_id"}
        if body.get("app_secret") != self.app_secret:
            return 400, {}, {"code": 10014, "msg": "app secret invalid"}
        token = f"t-{secrets.token_hex(16)}"
        self.tokens.add(token)
        return 200, {}, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": 7200}

    def _create(self, id_type: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        if id_type != "chat_id" or body.get("receive_id") != self.chat_id:
            return 400, {}, {"code": 230002, "msg": "Bot/User can NOT be out of the chat."}
        if body.get("msg_type") != "interactive":
            return 400, {}, {"code": 230001, "msg": "invalid message content"}
        refused = self._refuse(body.get("content"))
        if refused is not None:
            return refused
        with self._lock:
            uuid = str(body.get("uuid") or "")
            message_id = self._uuids.get(uuid) or f"om_{secrets.token_hex(12)}"
            if uuid:
                self._uuids[uuid] = message_id
            self.messages.setdefault(message_id, []).append(json.loads(body["content"]))
        return (
            200,
            {},
            {"code": 0, "msg": "success", "data": {"message_id": message_id, "msg_type": "interactive"}},
        )

    def _patch(self, message_id: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        if message_id not in self.messages:
            return 400, {}, {"code": 230001, "msg": f"invalid message_id {message_id}"}
        refused = self._refuse(body.get("content"))
        if refused is not None:
            return refused
        with self._lock:
            self.messages[message_id].append(json.loads(body["content"]))
        return 200, {}, {"code": 0, "msg": "success", "data": {}}

    def _refuse(self, content: Any) -> tuple[int, dict[str, str], Any] | None:
        problems = card_problems(content)
        if not problems:
            return None
        self.refusals.extend(problems)
        return 400, {}, {"code": 230099, "msg": "Failed to create card content, ext=" + "; ".join(problems)}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                self._answer("POST")

            def do_PATCH(self) -> None:  # the name http.server calls
                self._answer("PATCH")

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._send(400, {}, {"code": 9499, "msg": "Bad Request"})
                    return
                self._send(*fake.answer(method, self.path, self.headers.get("Authorization", ""), body))

            def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
                raw = (
                    body.encode() if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode()
                )
                try:
                    self.send_response(status)
                    self.send_header(
                        "Content-Type", "text/html" if isinstance(body, str) else "application/json"
                    )
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


def card_problems(content: Any) -> list[str]:
    """Why Feishu would refuse `content` as an interactive card in JSON 2.0; empty when it would not."""
    if not isinstance(content, str):
        return ["content must be a JSON string, not an object"]
    if len(content.encode()) > MAX_CARD:
        return [f"the card is {len(content.encode())} bytes, over 30 KB"]
    try:
        card = json.loads(content)
    except ValueError:
        return ["content is not JSON"]
    if not isinstance(card, dict) or card.get("schema") != "2.0":
        return ['schema must be "2.0"']
    problems = []
    if card.get("config", {}).get("update_multi") is not True:
        problems.append("config.update_multi must be true in JSON 2.0")
    if "elements" in card or "i18n_elements" in card or "fallback" in card:
        problems.append(
            "elements belong under body in JSON 2.0; i18n_elements and fallback are not supported"
        )
    header = card.get("header", {})
    if header.get("title", {}).get("tag") != "plain_text":
        problems.append("header.title must be plain_text")
    elements = card.get("body", {}).get("elements")
    if not isinstance(elements, list) or not elements:
        problems.append("body.elements must be a non-empty list")
        return problems
    for element in elements:
        problems.extend(_element_problems(element))
    return problems


def _element_problems(element: Any) -> list[str]:
    if not isinstance(element, dict):
        return [f"an element is not an object: {element!r}"]
    tag = element.get("tag")
    if tag == "action":
        return ["unsupported tag action"]  # Feishu's 200861 for a 1.0 action module in a 2.0 card
    if tag not in ALLOWED:
        return [f"unsupported tag {tag}"]
    problems = [f"{tag} has unsupported attribute {key}" for key in element if key not in ALLOWED[tag]]
    element_id = element.get("element_id")
    if element_id is not None and not (len(element_id) <= 20 and element_id[:1].isalpha()):
        problems.append(f"element_id {element_id!r}: at most 20 characters, starting with a letter")
    if tag == "button":
        problems.extend(_button_problems(element))
    for child in [element.get("text")] if tag == "div" else []:
        problems.extend(_element_problems(child))
    for child in element.get("columns", []) + element.get("elements", []):
        problems.extend(_element_problems(child))
    return problems


def _button_problems(button: dict[str, Any]) -> list[str]:
    problems = []
    if len(button.get("text", {}).get("content", "")) > 100:
        problems.append("a button's text is over 100 characters")
    for behavior in button.get("behaviors", []):
        if behavior.get("type") == "callback" and not isinstance(behavior.get("value"), dict):
            problems.append("a callback value must be an object")
    return problems


def _failure(failure: Failure) -> tuple[int, dict[str, str], Any]:
    if failure.kind == "rate_limit":
        headers = {"x-ogw-ratelimit-limit": "5", "x-ogw-ratelimit-reset": str(failure.reset)}
        return 429, headers, {"code": 99991400, "msg": "request trigger frequency limit"}
    if failure.kind == "server_error":
        return 500, {}, {"code": 1500, "msg": "internal error"}
    return 502, {}, "<html><body>502 Bad Gateway</body></html>"


class FeishuCallbacks:
    """What Feishu POSTs to an app's callback URL, encrypted and signed as Feishu does when `encrypt_key` is set."""

    def __init__(
        self, verification_token: str, encrypt_key: str | None = None, app_id: str = "cli_fake"
    ) -> None:
        self.verification_token = verification_token
        self.encrypt_key = encrypt_key
        self.app_id = app_id

    def card_action(
        self,
        open_id: str,
        value: dict[str, Any],
        *,
        message_id: str = "om_fake0001",
        chat_id: str = CHAT,
        token: str | None = None,
    ) -> dict[str, Any]:
        """A `card.action.trigger` callback (schema 2.0): `open_id` clicked a button whose callback value is `value`."""
        return {
            "schema": "2.0",
            "header": {
                "event_id": f"ev_{secrets.token_hex(8)}",
                "token": self.verification_token if token is None else token,
                "create_time": str(int(time.time() * 1_000_000)),
                "event_type": "card.action.trigger",
                "tenant_key": "tenant_fake",
                "app_id": self.app_id,
            },
            "event": {
                "operator": {"tenant_key": "tenant_fake", "open_id": open_id, "union_id": f"on_{open_id}"},
                "token": f"c-{secrets.token_hex(12)}",
                "action": {"tag": "button", "value": value, "timezone": "Asia/Shanghai"},
                "host": "im_message",
                "context": {"open_message_id": message_id, "open_chat_id": chat_id},
            },
        }

    def url_verification(self, challenge: str, token: str | None = None) -> dict[str, Any]:
        token = self.verification_token if token is None else token
        return {"challenge": challenge, "token": token, "type": "url_verification"}

    def request(
        self,
        payload: dict[str, Any],
        *,
        encrypt: bool = True,
        sign: bool = True,
        sign_with: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the POST: encrypted and signed when this app has an encrypt key (and `encrypt`,
        `sign` say so); `sign_with` signs with another key, as a forger would have to."""
        use_key = self.encrypt_key is not None and encrypt
        body = self.encrypt(payload) if use_key else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        key = sign_with or self.encrypt_key
        if sign and key is not None:
            timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
            headers["X-Lark-Request-Timestamp"] = timestamp
            headers["X-Lark-Request-Nonce"] = nonce
            digest = hashlib.sha256((timestamp + nonce + key).encode() + body).hexdigest()
            headers["X-Lark-Signature"] = digest
        return body, headers

    def encrypt(self, payload: dict[str, Any]) -> bytes:
        """`{"encrypt": base64(IV + AES-256-CBC(sha256(encrypt key), PKCS7(JSON)))}`, a random IV each time."""
        assert self.encrypt_key is not None
        iv = secrets.token_bytes(AES.block_size)
        cipher = AES.new(hashlib.sha256(self.encrypt_key.encode()).digest(), AES.MODE_CBC, iv)
        sealed = cipher.encrypt(pad(json.dumps(payload).encode(), AES.block_size))
        return json.dumps({"encrypt": base64.b64encode(iv + sealed).decode()}).encode()
