"""A fake WeCom on loopback: a self-built app's server API, the group robot webhook, and the callbacks WeCom
POSTs to an app (built by `Callbacks`, which encrypts and signs as WeCom does, with its own code): the URL check,
card clicks, and the messages people write to the app (text, or an image's).

Server API (all answers HTTP 200 with `errcode`, as WeCom's are):
- `GET /cgi-bin/gettoken?corpid&corpsecret` issues tokens that expire after `expires_in` on the fake's clock.
  `expire_tokens()` makes the ones issued so far answer 42001; `revoke_tokens()` makes them unknown (40014).
- `POST /cgi-bin/message/send?access_token` checks the agentid, the recipients (unknown ones come back in
  `invaliduser`; all unknown is 81013), the template card's rules (button_interaction, task_id characters, length
  and uniqueness, 1–6 buttons with unique keys ≤ 1,024 bytes) and markdown's 2,048 bytes. A template card answers a
  `response_code`. `markdown_to(user)` lists the markdown sent to one member (chat replies).
- `POST /cgi-bin/message/update_template_card` spends a response code: once, within 72 h.
- `trusted_ips`, when set, is the app's 企业可信IP: calls from other addresses answer 60020.
- `POST /cgi-bin/webhook/send?key` is the group robot: unknown key 93000, over 20 messages in 60 s 45009 (the
  message is dropped), markdown over 4,096 bytes or text over 2,048 40058.
- `busy(n)` makes the next n calls answer -1; `outage = True` answers HTTP 503 with an HTML page.

Codes marked "not verified" are placeholders: WeCom's answer for that case is not documented where we looked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.fakes.loopback import LoopbackServer

CORP_ID = "ww0a1b2c3d4e5f6789"
SECRET = "fake-corp-secret-Q2w9Zr7LkP0sVb3N"
AGENT_ID = 1000002
USERS = frozenset({"zhangsan", "lisi", "wangwu"})
ROBOT_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
CALLBACK_TOKEN = "fakeCallbackToken7Hq"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeCom's EncodingAESKey
TASK_ID = re.compile(r"[0-9A-Za-z_\-@]{1,128}")
ROBOT_PER_MINUTE = 20
ROBOT_MARKDOWN = 4096
ROBOT_TEXT = 2048
APP_MARKDOWN = 2048
RESPONSE_CODE_LIFETIME = 72 * 3600.0


@dataclass
class Token:
    expires: float
    revoked: bool = False


@dataclass
class Robot:
    messages: list[dict[str, Any]] = field(default_factory=list)
    arrivals: deque[float] = field(default_factory=deque)


def _err(code: int, message: str) -> dict[str, Any]:
    more = f", more info at https://open.work.weixin.qq.com/devtool/query?e={code}" if code else ""
    return {"errcode": code, "errmsg": message + more}


OK = {"errcode": 0, "errmsg": "ok"}


class FakeWeCom(LoopbackServer):
    def __init__(self, clock: Callable[[], float] = time.time, trusted_ips: set[str] | None = None) -> None:
        self.clock = clock
        self.trusted_ips = trusted_ips
        self.expires_in = 7200
        self.outage = False
        self.token_requests = 0
        self.tokens: dict[str, Token] = {}
        self.messages: list[dict[str, Any]] = []  # accepted message/send bodies
        self.updates: list[dict[str, Any]] = []  # accepted update_template_card bodies
        self.response_codes: dict[str, tuple[str, float]] = {}  # unspent code → (task_id, issued)
        self.task_ids: set[str] = set()
        self.robots: dict[str, Robot] = {ROBOT_KEY: Robot()}
        self.calls: list[str] = []  # the path of every request, in order
        self._busy = 0
        self._lock = threading.Lock()
        super().__init__()

    # ---- steering

    def busy(self, times: int = 1) -> None:
        self._busy += times

    def expire_tokens(self) -> None:
        for token in self.tokens.values():
            token.expires = 0.0

    def revoke_tokens(self) -> None:
        for token in self.tokens.values():
            token.revoked = True

    # ---- answers

    def answer(self, method: str, path: str, query: dict[str, str], body: Any, ip: str) -> dict[str, Any]:
        self.calls.append(path)
        if self._busy:
            self._busy -= 1
            return _err(-1, "system busy")
        if path == "/cgi-bin/webhook/send" and method == "POST":
            return self._robot(query.get("key", ""), body)
        if self.trusted_ips is not None and ip not in self.trusted_ips:
            return _err(
                60020, f"not allow to access from your ip, hint: [{secrets.token_hex(4)}], from ip: {ip}"
            )
        if path == "/cgi-bin/gettoken" and method == "GET":
            return self._token(query)
        routes = {"/cgi-bin/message/send": self._send, "/cgi-bin/message/update_template_card": self._update}
        if method != "POST" or path not in routes:
            return _err(404, f"unknown path {path}")  # not verified
        problem = self._token_problem(query.get("access_token"))
        if problem is not None:
            return problem
        if not isinstance(body, dict):
            return _err(47001, "data format error")  # WeCom's code for a body that is not JSON
        return routes[path](body)

    def _token(self, query: dict[str, str]) -> dict[str, Any]:
        self.token_requests += 1
        if query.get("corpid") != CORP_ID:
            return _err(40013, "invalid corpid")
        if query.get("corpsecret") != SECRET:
            return _err(40001, "invalid credential")
        token = secrets.token_urlsafe(48)
        self.tokens[token] = Token(self.clock() + self.expires_in)
        return {**OK, "access_token": token, "expires_in": self.expires_in}

    def _token_problem(self, token: str | None) -> dict[str, Any] | None:
        if not token:
            return _err(41001, "access_token missing")
        kept = self.tokens.get(token)
        if kept is None or kept.revoked:
            return _err(40014, "invalid access_token")
        if kept.expires <= self.clock():
            return _err(42001, "access_token expired")
        return None

    def _send(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("agentid") != AGENT_ID:
            return _err(40056, "invalid agentid")
        users = [user for user in str(body.get("touser") or "").split("|") if user]
        invalid = [user for user in users if user not in USERS]
        if not users or len(invalid) == len(users):
            return _err(81013, "user & party & tag all invalid")
        kind = body.get("msgtype")
        content = body.get(kind) if isinstance(kind, str) else None
        if not isinstance(content, dict):
            return _err(40008, "invalid message type")
        problem = _markdown_problem(content) if kind == "markdown" else None
        if kind == "template_card":
            problem = self._card_problem(content)
        if problem is not None:
            return _err(40058, problem)
        self.messages.append(body)
        answer = {**OK, "msgid": secrets.token_urlsafe(24)}
        if invalid:
            answer["invaliduser"] = "|".join(invalid)
        if kind == "template_card":
            self.task_ids.add(content["task_id"])
            answer["response_code"] = self._issue(content["task_id"])
        return answer

    def _card_problem(self, card: dict[str, Any]) -> str | None:
        if card.get("task_id") in self.task_ids:
            return "task_id exists"  # not verified
        return card_problem(card)

    def _issue(self, task: str) -> str:
        code = secrets.token_urlsafe(32)
        self.response_codes[code] = (task, self.clock())
        return code

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("agentid") != AGENT_ID:
            return _err(40056, "invalid agentid")
        if not isinstance(body.get("userids"), list):
            return _err(40058, "userids must be an array")  # not verified
        spent = self.response_codes.pop(str(body.get("response_code")), None)
        if spent is None or self.clock() - spent[1] >= RESPONSE_CODE_LIFETIME:
            return _err(40058, "invalid response_code")  # not verified
        if ("button" in body) == ("template_card" in body):
            return _err(40058, "give either button or template_card")  # not verified
        self.updates.append(body)
        return {**OK, "invaliduser": []}

    def markdown_to(self, user: str) -> list[str]:
        """The markdown messages sent to `user` (alone or among others), in order."""
        return [
            str(m["markdown"]["content"])
            for m in self.messages
            if m["msgtype"] == "markdown" and user in str(m["touser"]).split("|")
        ]

    def click(self, task: str) -> str:
        """A fresh response code, as a click event on the card carries."""
        assert task in self.task_ids, f"no card with task_id {task}"
        return self._issue(task)

    def _robot(self, key: str, body: Any) -> dict[str, Any]:
        robot = self.robots.get(key)
        if robot is None:
            return _err(93000, "invalid webhook url")
        now = self.clock()
        while robot.arrivals and robot.arrivals[0] <= now - 60:
            robot.arrivals.popleft()
        if len(robot.arrivals) >= ROBOT_PER_MINUTE:
            return _err(45009, "api freq out of limit")
        if not isinstance(body, dict) or body.get("msgtype") not in ("text", "markdown", "markdown_v2"):
            return _err(40008, "invalid message type")
        content = str((body.get(body["msgtype"]) or {}).get("content") or "")
        limit = ROBOT_TEXT if body["msgtype"] == "text" else ROBOT_MARKDOWN
        if len(content.encode("utf-8")) > limit:
            return _err(40058, f"{body['msgtype']}.content exceed max length {limit}")
        robot.arrivals.append(now)
        robot.messages.append(body)
        return OK

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server calls
                self._answer("GET")

            def do_POST(self) -> None:  # the name http.server calls
                self._answer("POST")

            def _answer(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if fake.outage:
                    self._reply(503, b"<html><body>503 Service Unavailable</body></html>", "text/html")
                    return
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                with fake._lock:
                    answer = fake.answer(method, parts.path, query, body, self.client_address[0])
                self._reply(200, json.dumps(answer, ensure_ascii=False).encode(), "application/json")

            def _reply(self, status: int, data: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        return Handler


def card_problem(card: dict[str, Any]) -> str | None:
    """Why message/send would refuse a template card, task_ids sent before aside; None when it would not."""
    if card.get("card_type") != "button_interaction":
        return "card_type must be button_interaction here"  # the fake knows only this type
    task = card.get("task_id")
    if not isinstance(task, str) or not TASK_ID.fullmatch(task):
        return "invalid task_id"  # not verified
    if not isinstance((card.get("main_title") or {}).get("title"), str):
        return "main_title.title missing"  # not verified
    return _buttons_problem(card.get("button_list"))


def _markdown_problem(content: dict[str, Any]) -> str | None:
    text = content.get("content")
    if not isinstance(text, str):
        return "markdown.content missing"
    if len(text.encode("utf-8")) > APP_MARKDOWN:
        return f"markdown.content exceed max length {APP_MARKDOWN}"
    return None


def _buttons_problem(buttons: Any) -> str | None:
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 6:
        return "button_list must hold 1 to 6 buttons"
    keys = [b.get("key") for b in buttons if isinstance(b, dict) and b.get("type", 0) == 0]
    if any(not isinstance(k, str) or not k or len(k.encode()) > 1024 for k in keys):
        return "button key must be 1 to 1024 bytes"
    if len(set(keys)) != len(keys):
        return "button keys must be unique"
    return None


class Callbacks:
    """What WeCom sends to an app's callback URL, sealed with the app's token and EncodingAESKey. Encrypts with the
    `cryptography` package, so that it checks aiops' own (pycryptodome) code rather than mirroring it."""

    def __init__(self, token: str = CALLBACK_TOKEN, aes_key: str = AES_KEY, corp_id: str = CORP_ID) -> None:
        self.token, self.corp_id = token, corp_id
        self.key = base64.b64decode(aes_key + "=")

    def seal(self, message: str, receive_id: str | None = None) -> str:
        text = message.encode()
        receiver = (self.corp_id if receive_id is None else receive_id).encode()
        plain = secrets.token_bytes(16) + struct.pack(">I", len(text)) + text + receiver
        pad = 32 - len(plain) % 32
        encryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).encryptor()
        return base64.b64encode(encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()).decode()

    def open(self, encrypted: str) -> str:
        decryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).decryptor()
        plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
        plain = plain[: -plain[-1]]
        (length,) = struct.unpack(">I", plain[16:20])
        assert plain[20 + length :].decode() == self.corp_id
        return plain[20 : 20 + length].decode()

    def sign(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return hashlib.sha1("".join(sorted([self.token, timestamp, nonce, encrypted])).encode()).hexdigest()

    def verification(self, echo: str = "8374629103847561") -> tuple[dict[str, str], str]:
        """The GET WeCom sends when the URL is saved: its query, and the plaintext the app must answer."""
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
        echostr = self.seal(echo)
        query = {
            "msg_signature": self.sign(timestamp, nonce, echostr),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr,
        }
        return query, echo

    def post(self, event_xml: str, agent_id: int = AGENT_ID, **seal: str) -> tuple[dict[str, str], bytes]:
        """A POSTed callback carrying `event_xml`: its query string and body."""
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
        encrypted = self.seal(event_xml, **seal)
        body = (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<AgentID><![CDATA[{agent_id}]]></AgentID><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        )
        query = {
            "msg_signature": self.sign(timestamp, nonce, encrypted),
            "timestamp": timestamp,
            "nonce": nonce,
        }
        return query, body.encode()

    def click(
        self, user: str, key: str, task: str, response_code: str, agent_id: int = AGENT_ID, created: int = 0
    ) -> tuple[dict[str, str], bytes]:
        """A template_card_event: `user` pressed the button whose key is `key` on the card `task`."""
        event = (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{created or int(time.time())}</CreateTime>"
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_event]]></Event>"
            f"<EventKey><![CDATA[{key}]]></EventKey><TaskId><![CDATA[{task}]]></TaskId>"
            "<CardType><![CDATA[button_interaction]]></CardType>"
            f"<ResponseCode><![CDATA[{response_code}]]></ResponseCode>"
            f"<AgentID>{agent_id}</AgentID></xml>"
        )
        return self.post(event, agent_id)

    def text(
        self, user: str, content: str, msg_id: str = "", agent_id: int = AGENT_ID, created: int = 0
    ) -> tuple[dict[str, str], bytes]:
        """A text message `user` wrote to the app ("接收普通消息" → 文本消息); a retry repeats its `msg_id`."""
        return self.post(
            self.message(
                user, "text", f"<Content><![CDATA[{_cdata(content)}]]></Content>", msg_id, agent_id, created
            ),
            agent_id,
        )

    def image(self, user: str, msg_id: str = "", agent_id: int = AGENT_ID) -> tuple[dict[str, str], bytes]:
        """An image `user` sent to the app."""
        more = (
            "<PicUrl><![CDATA[https://wework.qpic.cn/x.png]]></PicUrl><MediaId><![CDATA[media-1]]></MediaId>"
        )
        return self.post(self.message(user, "image", more, msg_id, agent_id), agent_id)

    def message(
        self, user: str, kind: str, more: str, msg_id: str = "", agent_id: int = AGENT_ID, created: int = 0
    ) -> str:
        """The XML of a message of `kind` (`more` its own elements), as the callback's decrypted `Encrypt`."""
        return (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{created or int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[{kind}]]></MsgType>{more}"
            f"<MsgId>{msg_id or secrets.randbelow(10**19)}</MsgId><AgentID>{agent_id}</AgentID></xml>"
        )


def _cdata(text: str) -> str:
    """`text` inside a CDATA section: a "]]>" in it closes one section and opens the next, as XML writers do."""
    return text.replace("]]>", "]]]]><![CDATA[>")


def robot_contents(fake: FakeWeCom, key: str = ROBOT_KEY) -> Iterator[str]:
    for message in fake.robots[key].messages:
        yield str(message[message["msgtype"]]["content"])
