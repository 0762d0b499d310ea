"""A fake Feishu Open API on loopback, and a sender of Feishu's card callbacks.

`FakeFeishu` answers what the app bot channel calls, with Feishu's traits:
- `POST /open-apis/auth/v3/tenant_access_token/internal` checks app_id and app_secret (10014 otherwise) and hands out
  a tenant access token that expires in two hours;
- `POST /open-apis/im/v1/messages?receive_id_type=chat_id` wants that token as a bearer (99991663 otherwise), the
  chat the bot is in (230002), and an interactive card whose `content` is a JSON *string* holding card JSON 2.0:
  `schema: "2.0"`, no `tag: action` anywhere, no attribute 2.0 does not know, at most 30 KB (230099 otherwise);
  one message per `uuid`;
- `PATCH /open-apis/im/v1/messages/{message_id}` replaces the card, keeping every version;
- `POST /open-apis/im/v1/messages/{message_id}/reply` answers a message the fake knows (a card it was sent, or one
  a person wrote through `says`) with a card under the same rules, once per `uuid`, recorded in `replies`; a
  withdrawn message (`withdraw`) gets 230011, one in a chat the bot left (`leave`) 230002;
- `GET /open-apis/bot/v3/info` answers the bot's own open_id (`bot_open_id`);
- `fail(...)` scripts the next answers of the message API: a rate limit (HTTP 429, 99991400, x-ogw-ratelimit-reset),
  an internal error (HTTP 500) or a gateway's HTML page (HTTP 502).

Each fake has an app_id of its own, so that no token or message of one test meets another's.

`says` is a person writing in a chat: the fake records the message (so that it can be replied to) and returns the
`im.message.receive_v1` event Feishu pushes for it. `FeishuCallbacks` builds what Feishu POSTs to the callback URL:
`card.action.trigger` (schema 2.0), events such as that one, and `url_verification` payloads, encrypted and signed
as Feishu does when the app has an Encrypt Key; the long connection (tests/fakes/feishu_ws.py) sends the same
payloads as frames.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
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
BOT_INFO_PATH = "/open-apis/bot/v3/info"
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
    "collapsible_panel": {
        "tag",
        "element_id",
        "expanded",
        "direction",
        "vertical_spacing",
        "horizontal_spacing",
        "vertical_align",
        "horizontal_align",
        "padding",
        "margin",
        "background_color",
        "header",
        "border",
        "elements",
    },
}


@dataclass(frozen=True)
class Replied:
    """One reply the bot posted: to which message, in which chat, in its thread or not, and the card."""

    message_id: str
    to: str
    chat_id: str
    in_thread: bool
    card: dict[str, Any]


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
        self.bot_open_id = f"ou_bot{secrets.token_hex(8)}"
        self.bot_info_requests = 0
        self.replies: list[Replied] = []
        self._said: dict[str, str] = {}  # message_id → chat_id of what people wrote
        self._withdrawn: set[str] = set()
        self._left: set[str] = set()  # chats the bot is no longer in
        super().__init__()

    def says(
        self,
        open_id: str,
        text: str,
        *,
        chat_id: str | None = None,
        direct: bool = False,
        mentions: Mapping[str, tuple[str, str]] | None = None,
        root_id: str | None = None,
        message_type: str = "text",
    ) -> dict[str, Any]:
        """`open_id` writes `text` in the group (or, `direct`, to the bot), `mentions` mapping each key in the
        text (`@_user_1`) to the open_id and name it stands for, as a reply in the thread of `root_id` when set:
        the `event` of the `im.message.receive_v1` Feishu pushes for it (wrap it with `FeishuCallbacks.event`)."""
        chat = chat_id or (f"oc_p2p{open_id}" if direct else self.chat_id)
        message_id = f"om_{secrets.token_hex(12)}"
        with self._lock:
            self._said[message_id] = chat
        content = (
            {"text": text} if message_type == "text" else {"image_key": f"img_v3_{secrets.token_hex(8)}"}
        )
        message: dict[str, Any] = {
            "message_id": message_id,
            "create_time": str(int(time.time() * 1000)),
            "update_time": str(int(time.time() * 1000)),
            "chat_id": chat,
            "chat_type": "p2p" if direct else "group",
            "message_type": message_type,
            "content": json.dumps(content, ensure_ascii=False),
            "user_agent": "Mozilla/5.0 Lark/7.30.0",
        }
        if root_id is not None:
            message |= {"root_id": root_id, "parent_id": root_id, "thread_id": f"omt_{secrets.token_hex(8)}"}
        if mentions:
            message["mentions"] = [_mention(key, *who) for key, who in mentions.items()]
        sender = {
            "open_id": open_id,
            "union_id": f"on_{open_id}",
        }  # user_id only with the "get user ID" permission
        return {
            "sender": {"sender_id": sender, "sender_type": "user", "tenant_key": "tenant_fake"},
            "message": message,
        }

    @property
    def bot(self) -> tuple[str, str]:
        """The bot, as a mention of `says` names it."""
        return self.bot_open_id, "aiops"

    def withdraw(self, message_id: str) -> None:
        """The person takes their message back: replies to it fail with 230011."""
        self._withdrawn.add(message_id)

    def leave(self, chat_id: str) -> None:
        """The bot is removed from `chat_id`: replies there fail with 230002."""
        self._left.add(chat_id)

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
        if method == "GET" and parts.path == BOT_INFO_PATH:
            return self._bot_info(authorization)
        if not parts.path.startswith(MESSAGES_PATH):
            return 404, {}, {"code": 404, "msg": f"no route {parts.path}"}
        if self.failures:
            return _failure(self.failures.popleft())
        if authorization.removeprefix("Bearer ") not in self.tokens:
            return 400, {}, {"code": 99991663, "msg": "Invalid access token for authorization."}
        if method == "POST" and parts.path == MESSAGES_PATH:
            return self._create(parse_qs(parts.query).get("receive_id_type", [""])[0], body)
        if method == "POST" and parts.path.endswith("/reply"):
            return self._reply(parts.path.removeprefix(MESSAGES_PATH + "/").removesuffix("/reply"), body)
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

    def _bot_info(self, authorization: str) -> tuple[int, dict[str, str], Any]:
        self.bot_info_requests += 1
        if authorization.removeprefix("Bearer ") not in self.tokens:
            return 400, {}, {"code": 99991663, "msg": "Invalid access token for authorization."}
        bot = {
            "activate_status": 2,
            "app_name": "aiops",
            "avatar_url": "https://example.invalid/avatar.png",
            "ip_white_list": [],
            "open_id": self.bot_open_id,
        }
        return 200, {}, {"code": 0, "msg": "ok", "bot": bot}

    def _reply(self, message_id: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        chat_id = self._said.get(message_id) or (self.chat_id if message_id in self.messages else None)
        if chat_id is None:
            return 400, {}, {"code": 230001, "msg": f"invalid message_id {message_id}"}
        if message_id in self._withdrawn:
            return 400, {}, {"code": 230011, "msg": "The message was withdrawn."}
        if chat_id in self._left:
            return 400, {}, {"code": 230002, "msg": "The bot can not be outside the group."}
        if body.get("msg_type") != "interactive" or not isinstance(body.get("reply_in_thread", False), bool):
            return 400, {}, {"code": 230001, "msg": "invalid msg_type or reply_in_thread"}
        refused = self._refuse(body.get("content"))
        if refused is not None:
            return refused
        with self._lock:
            uuid = str(body.get("uuid") or "")
            reply_id = self._uuids.get(uuid)
            if reply_id is None:
                reply_id = f"om_{secrets.token_hex(12)}"
                in_thread = bool(body.get("reply_in_thread", False))
                card = json.loads(body["content"])
                self.replies.append(Replied(reply_id, message_id, chat_id, in_thread, card))
            if uuid:
                self._uuids[uuid] = reply_id
        data = {"message_id": reply_id, "root_id": message_id, "parent_id": message_id, "chat_id": chat_id}
        return 200, {}, {"code": 0, "msg": "success", "data": data}

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

            def do_GET(self) -> None:  # the name http.server calls
                self._answer("GET")

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
    header = card.get("header")  # optional: a card may have no title
    if header is not None and header.get("title", {}).get("tag") != "plain_text":
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
    if tag == "collapsible_panel" and element.get("header", {}).get("title", {}).get("tag") not in (
        "plain_text",
        "markdown",
    ):
        problems.append("a collapsible_panel's header.title must be plain_text or markdown")
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
        if behavior.get("type") == "open_url" and not isinstance(behavior.get("default_url"), str):
            problems.append("an open_url behavior needs a default_url")
    return problems


def _mention(key: str, open_id: str, name: str) -> dict[str, Any]:
    return {
        "key": key,
        "id": {"open_id": open_id, "union_id": f"on_{open_id}"},
        "name": name,
        "tenant_key": "tenant_fake",
    }


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

    def event(self, event_type: str, event: dict[str, Any], *, token: str | None = None) -> dict[str, Any]:
        """An event (schema 2.0) as Feishu pushes it, e.g. `im.message.receive_v1` with `FakeFeishu.says`."""
        return {
            "schema": "2.0",
            "header": {
                "event_id": secrets.token_hex(16),
                "token": self.verification_token if token is None else token,
                "create_time": str(int(time.time() * 1000)),
                "event_type": event_type,
                "tenant_key": "tenant_fake",
                "app_id": self.app_id,
            },
            "event": event,
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
