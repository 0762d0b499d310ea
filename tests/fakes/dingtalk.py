"""A fake DingTalk on loopback: the Open API calls the DingTalk channel makes, and the Stream gateway.

Open API: `POST /v1.0/oauth2/accessToken` issues tokens that expire;
`POST /v1.0/card/instances/createAndDeliver` and `PUT /v1.0/card/instances` want a live token in
`x-acs-dingtalk-access-token` and check what the real ones require (template, outTrackId, string-only
`cardParamMap`, `callbackType: STREAM`, the group's openSpaceId and robotCode). `fail()` makes the next card calls
answer an error instead. Cards are kept in `cards`, their data updated by key as DingTalk does with
`updateCardDataByKey`.

Stream (what dingtalk-stream 0.24.3's `stream.py` sends and expects): `POST /v1.0/gateway/connections/open`
answers a WebSocket endpoint and a one-time ticket; the WebSocket (the `websockets` package, which the SDK uses too)
accepts `?ticket=`, sends SYSTEM and CALLBACK frames, and keeps the client's acks by messageId. `click()` presses a
button of a delivered card the way the card platform reports it on the card-callback topic.

Chat: `deliver()` sends a chatbot message (a CALLBACK frame on `/v1.0/im/bot/messages/get`) with a session webhook
of its own, `POST /robot/sendBySession?session=…`, which answers `errcode` 0 until the session expires (then an
error code, not verified) and keeps what was posted in `session_posts`; `fail_session()` makes it answer
errcodes (130101: throttled). The robot's Open API calls `POST /v1.0/robot/groupMessages/send` and
`/v1.0/robot/oToMessages/batchSend` want a live token, the app's robotCode, a known msgKey with its msgParam a JSON
string, and keep what they sent in `robot_messages`; `fail()` applies to them as to the card calls.

Error codes marked "not verified" are placeholders: what the channel does with them does not depend on the code.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve

CLIENT_ID = "dingfakeappkey01"
SECRET = "fake-app-secret-5Yq8Lw2Zp"
GROUP = "cidFakeGroup0123456789=="
CORP = "dingcorp0001"
CARD_TOPIC = "/v1.0/card/instances/callback"
CHATBOT_TOPIC = "/v1.0/im/bot/messages/get"
SESSION_PATH = "/robot/sendBySession"
SESSION_LIFETIME = 90 * 60.0  # seconds a session webhook lasts, as DingTalk's do (about 1.5 hours)
SESSION_EXPIRED = 300001  # not verified: what DingTalk answers for an expired session is not documented
TOO_LARGE = 460101  # the robots' "message too large"
MAX_MESSAGE = 20_000  # bytes of a robot message's body
MSG_KEYS = {"sampleText": {"content"}, "sampleMarkdown": {"title", "text"}}
Answer = tuple[int, dict[str, str], Any]


@dataclass
class Failure:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class FakeDingTalk:
    def __init__(self, client_id: str = CLIENT_ID, client_secret: str = SECRET, group: str = GROUP) -> None:
        self.client_id, self.client_secret, self.group = client_id, client_secret, group
        self.expire_in = 7200
        self.token_requests = 0
        self.tokens: dict[str, float] = {}  # access token → when it expires (time.time())
        self.cards: dict[
            str, dict[str, Any]
        ] = {}  # outTrackId → {"created": request, "params": cardParamMap}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []  # card calls: (method, path, body)
        self.opened: list[dict[str, Any]] = []  # connection-open requests
        self.acks: dict[str, dict[str, Any]] = {}  # messageId → the client's ack
        self.connected = threading.Event()
        self.sessions: dict[str, float] = {}  # session webhook's session → when it expires (time.time())
        self.session_posts: list[dict[str, Any]] = []  # what was posted to session webhooks, with "session"
        self.robot_messages: list[tuple[str, dict[str, Any]]] = []  # (path, body) of the robot's sends
        self.staff = {"staff-1", "staff-2", "staff-3"}  # the organisation's staff ids, for batchSend
        self._session_failures: deque[int] = deque()
        self._failures: deque[Failure] = deque()
        self._tickets: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._acked = threading.Condition(self._lock)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self._http_thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)
        self._ws_loop = asyncio.new_event_loop()
        self._ws_thread = threading.Thread(target=self._ws_loop.run_forever, daemon=True)
        self._ws_server: Server | None = None
        self._socket: ServerConnection | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def ws_url(self) -> str:
        assert self._ws_server is not None
        port = next(iter(self._ws_server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    def start(self) -> Self:
        self._http_thread.start()
        self._ws_thread.start()
        self._ws_server = self._on_ws_loop(self._listen())
        return self

    async def _listen(self) -> Server:
        return await serve(self._serve_socket, "127.0.0.1", 0)

    def stop(self) -> None:
        if self._ws_server is not None:
            self._ws_server.close()
            self._on_ws_loop(self._ws_server.wait_closed())
        self._ws_loop.call_soon_threadsafe(self._ws_loop.stop)
        self._ws_thread.join(5)
        self._http.shutdown()
        self._http.server_close()

    # ---- steering

    def fail(self, status: int, body: Any, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """The next `times` card calls answer `status` and `body` (a dict as JSON, a str as is)."""
        self._failures.extend(Failure(status, body, headers or {}) for _ in range(times))

    def expire_tokens(self) -> None:
        self.tokens = dict.fromkeys(self.tokens, 0.0)

    def expire_sessions(self) -> None:
        self.sessions = dict.fromkeys(self.sessions, 0.0)

    def fail_session(self, errcode: int, times: int = 1) -> None:
        """The next `times` posts to a session webhook answer HTTP 200 with `errcode`."""
        self._session_failures.extend([errcode] * times)

    # ---- chat

    def deliver(self, data: dict[str, Any], lifetime: float = SESSION_LIFETIME) -> str:
        """Send a chatbot message as DingTalk does; a `sessionWebhook` in `data` is replaced by one of this fake's,
        expiring in `lifetime` seconds. Returns the frame's messageId."""
        if "sessionWebhook" in data:
            session = secrets.token_urlsafe(12)
            expires = time.time() + lifetime
            self.sessions[session] = expires
            data = {
                **data,
                "sessionWebhook": f"{self.url}{SESSION_PATH}?session={session}",
                "sessionWebhookExpiredTime": int(expires * 1000),
            }
        return self.push("CALLBACK", CHATBOT_TOPIC, data)

    # ---- Stream

    def click(
        self,
        out_track_id: str,
        user: str,
        action: str,
        proposal_id: int,
        params: dict[str, Any] | None = None,
    ) -> str:
        """Press `action` (approve / reject) on the proposal's buttons of a delivered card; returns the frame's
        messageId. `params` replaces what the card's item binds (proposal_id and hash), to send what no card
        would."""
        card = self.cards[out_track_id]
        assert card["created"]["callbackType"] == "STREAM", "DingTalk sends clicks over Stream only then"
        if params is None:
            items = json.loads(card["params"]["proposals"])
            [item] = [i for i in items if i["proposal_id"] == str(proposal_id)]
            assert item["pending"] == "true", "the card shows no buttons for this proposal"
            params = {"proposal_id": item["proposal_id"], "hash": item["hash"]}
        content = {"cardPrivateData": {"actionIds": [action], "params": params}}
        data = {
            "type": "actionCallback",
            "corpId": CORP,
            "outTrackId": out_track_id,
            "spaceType": "IM_GROUP",
            "spaceId": self.group,
            "userId": user,
            "userIdType": 1,
            "content": json.dumps(content),
            "extension": "{}",
        }
        return self.push("CALLBACK", CARD_TOPIC, data)

    def ping(self) -> str:
        return self.push("SYSTEM", "ping", {"opaque": secrets.token_hex(8)})

    def push(self, kind: str, topic: str, data: dict[str, Any]) -> str:
        """Send a frame as the gateway does: headers, and the data as a JSON string."""
        assert self._socket is not None, "no client is connected"
        message_id = f"msg-{next(self._ids)}"
        headers = {
            "appId": self.client_id,
            "connectionId": "conn-1",
            "contentType": "application/json",
            "messageId": message_id,
            "time": str(int(time.time() * 1000)),
            "topic": topic,
        }
        frame = {"specVersion": "1.0", "type": kind, "headers": headers, "data": json.dumps(data)}
        self._on_ws_loop(self._socket.send(json.dumps(frame)))
        return message_id

    def wait_ack(self, message_id: str, timeout: float = 10.0) -> dict[str, Any]:
        with self._acked:
            if not self._acked.wait_for(lambda: message_id in self.acks, timeout):
                raise TimeoutError(f"no ack for {message_id}")
            return self.acks[message_id]

    def disconnect(self) -> None:
        """The gateway's SYSTEM `disconnect`: the client closes and connects again."""
        self.connected.clear()
        self.push("SYSTEM", "disconnect", {"reason": "test"})

    def _on_ws_loop(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._ws_loop).result(10)

    async def _serve_socket(self, socket: ServerConnection) -> None:
        query = parse_qs(urlsplit(socket.request.path if socket.request else "").query)
        ticket = (query.get("ticket") or [""])[0]
        with self._lock:
            known = ticket in self._tickets
            self._tickets.discard(ticket)  # a ticket opens one connection
        if not known:
            await socket.close(1008, "unknown ticket")
            return
        self._socket = socket
        self.connected.set()
        async for raw in socket:
            self._record_ack(json.loads(raw))

    def _record_ack(self, ack: dict[str, Any]) -> None:
        assert isinstance(ack.get("code"), int), ack
        assert isinstance(ack.get("data"), str), "the ack's data is a JSON string"
        message_id = ack["headers"]["messageId"]
        with self._acked:
            self.acks[message_id] = {**ack, "data": json.loads(ack["data"])}
            self._acked.notify_all()

    # ---- Open API

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any, query: str = "") -> Answer:
        if (method, path) == ("POST", SESSION_PATH):
            return self._session_post(query, body)
        if (method, path) == ("POST", "/v1.0/oauth2/accessToken"):
            return self._token(body)
        if (method, path) == ("POST", "/v1.0/gateway/connections/open"):
            return self._open(body)
        routes = {
            ("POST", "/v1.0/card/instances/createAndDeliver"): self._create,
            ("PUT", "/v1.0/card/instances"): self._update,
            ("POST", "/v1.0/robot/groupMessages/send"): self._group_message,
            ("POST", "/v1.0/robot/oToMessages/batchSend"): self._direct_messages,
        }
        route = routes.get((method, path))
        if route is None:
            return 404, {}, {"code": "NotFound", "message": path}
        with self._lock:
            self.calls.append((method, path, body))
        if self._failures:
            failure = self._failures.popleft()
            return failure.status, failure.headers, failure.body
        if self.tokens.get(headers.get("x-acs-dingtalk-access-token", ""), 0.0) <= time.time():
            return 401, {}, {"code": "InvalidAuthentication", "message": "不合法的access_token"}
        return route(body)

    def _token(self, body: Any) -> Answer:
        self.token_requests += 1
        if body.get("appKey") != self.client_id or body.get("appSecret") != self.client_secret:
            return 400, {}, {"code": "invalidClientIdOrSecret", "message": "无效的clientId或者clientSecret"}
        token = secrets.token_hex(16)
        self.tokens[token] = time.time() + self.expire_in
        return 200, {}, {"accessToken": token, "expireIn": self.expire_in}

    def _create(self, body: dict[str, Any]) -> Answer:
        problems = list(_create_problems(body, self.client_id))
        if body.get("outTrackId") in self.cards:
            problems.append("outTrackId exists")  # not verified
        if problems:
            return 400, {}, {"code": "param.invalid", "message": "; ".join(problems)}  # code not verified
        space = body["openSpaceId"].removeprefix("dtv1.card//IM_GROUP.")
        delivered = space == self.group
        self.cards[body["outTrackId"]] = {"created": body, "params": dict(body["cardData"]["cardParamMap"])}
        result = {"spaceType": "IM_GROUP", "spaceId": space, "success": delivered, "carrierId": "carrier-1"}
        if not delivered:
            result["errorMsg"] = "robot is not a member of the group"  # not verified
        return (
            200,
            {},
            {"success": True, "result": {"outTrackId": body["outTrackId"], "deliverResults": [result]}},
        )

    def _update(self, body: dict[str, Any]) -> Answer:
        card = self.cards.get(body.get("outTrackId", ""))
        params: dict[str, str] = (body.get("cardData") or {}).get("cardParamMap") or {}
        if card is None or not _strings(params):
            return 400, {}, {"code": "param.invalid", "message": "unknown outTrackId or bad cardData"}
        if (body.get("cardUpdateOptions") or {}).get("updateCardDataByKey"):
            card["params"].update(params)
        else:
            card["params"] = dict(params)
        return 200, {}, {"success": True, "result": True}

    def _session_post(self, query: str, body: dict[str, Any]) -> Answer:
        session = (parse_qs(query).get("session") or [""])[0]
        if self.sessions.get(session, 0.0) <= time.time():
            return 200, {}, {"errcode": SESSION_EXPIRED, "errmsg": "session is expired or does not exist"}
        if self._session_failures:
            return 200, {}, {"errcode": self._session_failures.popleft(), "errmsg": "send too fast"}
        problem = _robot_message_problem(body)
        if problem is not None:
            return 200, {}, problem
        with self._lock:
            self.session_posts.append({**body, "session": session})
        return 200, {}, {"errcode": 0, "errmsg": "ok"}

    def _group_message(self, body: dict[str, Any]) -> Answer:
        problem = self._robot_send_problem(body)
        if problem is None and not str(body.get("openConversationId", "")).startswith("cid"):
            problem = "openConversationId must be a group's cid…"
        if problem is not None:
            return 400, {}, {"code": "param.invalid", "message": problem}  # code not verified
        self.robot_messages.append(("/v1.0/robot/groupMessages/send", body))
        return 200, {}, {"processQueryKey": secrets.token_hex(8)}

    def _direct_messages(self, body: dict[str, Any]) -> Answer:
        problem = self._robot_send_problem(body)
        users = body.get("userIds")
        if problem is None and not (
            isinstance(users, list) and users and all(isinstance(u, str) for u in users)
        ):
            problem = "userIds must be a list of staff ids"
        if problem is not None:
            return 400, {}, {"code": "param.invalid", "message": problem}  # code not verified
        self.robot_messages.append(("/v1.0/robot/oToMessages/batchSend", body))
        invalid = [user for user in users if user not in self.staff]
        answer = {"processQueryKey": secrets.token_hex(8), "invalidStaffIdList": invalid}
        return 200, {}, {**answer, "flowControlledStaffIdList": []}

    def _robot_send_problem(self, body: dict[str, Any]) -> str | None:
        if body.get("robotCode") != self.client_id:
            return "robotCode must be the app's robot code"
        fields = MSG_KEYS.get(body.get("msgKey", ""))
        if fields is None:
            return f"unknown msgKey {body.get('msgKey')!r}"
        try:
            param = json.loads(body.get("msgParam") or "")
        except (TypeError, ValueError):
            return "msgParam must be a JSON string"
        if not isinstance(param, dict) or not fields <= set(param):
            return f"msgParam of {body['msgKey']} needs {sorted(fields)}"
        if len(json.dumps(body, ensure_ascii=False).encode()) > MAX_MESSAGE:
            return "the message is over 20 KB"
        return None

    def _open(self, body: Any) -> Answer:
        self.opened.append(body)
        subscriptions = body.get("subscriptions")
        valid = isinstance(subscriptions, list) and all({"type", "topic"} <= set(s) for s in subscriptions)
        if (
            body.get("clientId") != self.client_id
            or body.get("clientSecret") != self.client_secret
            or not valid
        ):
            return (
                401,
                {},
                {"code": "InvalidClient", "message": "bad credentials or subscriptions"},
            )  # not verified
        ticket = secrets.token_urlsafe(16)
        with self._lock:
            self._tickets.add(ticket)
        return 200, {}, {"endpoint": self.ws_url, "ticket": ticket}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                self._answer("POST")

            def do_PUT(self) -> None:  # the name http.server calls
                self._answer("PUT")

            def _answer(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                headers: dict[str, str] = {}
                if not isinstance(body, dict):
                    status, answer = 400, {"code": "InvalidJson", "message": "not a JSON object"}
                else:
                    lowered = {k.lower(): v for k, v in self.headers.items()}
                    url = urlsplit(self.path)
                    status, headers, answer = fake.answer(method, url.path, lowered, body, url.query)
                data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        return Handler


def _create_problems(body: dict[str, Any], client_id: str) -> Iterator[str]:
    for name in ("cardTemplateId", "outTrackId", "openSpaceId"):
        if not isinstance(body.get(name), str) or not body[name]:
            yield f"{name} is required"
    if not _strings((body.get("cardData") or {}).get("cardParamMap")):
        yield "cardData.cardParamMap must map strings to strings"
    if body.get("callbackType") != "STREAM":
        yield "callbackType must be STREAM for clicks to arrive over the Stream connection"
    if not str(body.get("openSpaceId", "")).startswith("dtv1.card//IM_GROUP."):
        yield "openSpaceId must be dtv1.card//IM_GROUP.<openConversationId>"
    if (body.get("imGroupOpenDeliverModel") or {}).get("robotCode") != client_id:
        yield "imGroupOpenDeliverModel.robotCode must be the app's robot code"


def _strings(params: Any) -> bool:
    return isinstance(params, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in params.items()
    )


def _robot_message_problem(body: dict[str, Any]) -> dict[str, Any] | None:
    """What a session webhook refuses in a message, as the robots answer (errcode and errmsg)."""
    if len(json.dumps(body, ensure_ascii=False).encode()) > MAX_MESSAGE:
        return {"errcode": TOO_LARGE, "errmsg": "message too large"}
    kind = body.get("msgtype")
    content = body.get(kind) if isinstance(kind, str) else None
    needed = {"markdown": {"title", "text"}, "text": {"content"}}.get(str(kind))
    if needed is None or not isinstance(content, dict) or not needed <= set(content):
        return {"errcode": 40035, "errmsg": "missing or bad parameters"}  # code not verified
    at = body.get("at", {})
    if not isinstance(at, dict) or not isinstance(at.get("atUserIds", []), list):
        return {"errcode": 40035, "errmsg": "at.atUserIds must be a list"}  # code not verified
    return None
