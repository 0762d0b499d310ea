"""A WeCom self-built app's calls: its access token, template cards with Approve/Reject buttons and their updates,
and markdown messages. Over the httpx client it is given; WeCom's own SDKs are not used (none is maintained for
Python, and none knows template cards).

- `gettoken` answers a token valid for `expires_in` (7,200 s). WeCom throttles apps that fetch one per call, so one
  is kept per corp and secret (`TokenCache`, shareable between clients of one app) until five minutes before it
  expires. It can be revoked early (a new secret, another instance fetching…): 42001 (expired) or 40014 (invalid)
  then drop it, and the call is made once more with a new one.
- `message/send` with a `template_card` of type `button_interaction` answers a `msgid` and a `response_code`.
  The card's `task_id` is unique per app, at most 128 bytes of `[0-9A-Za-z_-@]`; each button's `key` (at most 1,024
  bytes, unique in the card) is what the click event's `EventKey` carries back.
- `message/update_template_card` spends a `response_code`: each works once, within 72 hours of being issued. Every
  click event brings a fresh one. A code is refused here before WeCom is asked when this client has spent it or
  it is too old, and a refusal by WeCom is reported as `ResponseCodeRefused`. In neither case can the card be
  edited any more; post a new message instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from aiops.channels.wecom.errors import TOKEN_REJECTED, WeComError, gateway_failure, refusal

BASE_URL = "https://qyapi.weixin.qq.com"
TOKEN_PATH = "/cgi-bin/gettoken"
SEND_PATH = "/cgi-bin/message/send"
UPDATE_PATH = "/cgi-bin/message/update_template_card"
MARKDOWN_LIMIT = 2048  # bytes: an app's markdown message (发送应用消息, 90236; the group robot allows 4,096)
TASK_ID_LIMIT = 128  # bytes
KEY_LIMIT = 1024  # bytes, a button's key
BUTTONS_LIMIT = 6
RESPONSE_CODE_LIFETIME = 72 * 3600.0  # seconds
_TASK_ID_CHARS = re.compile(r"[^0-9A-Za-z_\-@]")
_TOKEN_MARGIN = 300.0  # seconds before its expiry that a token is replaced
Decision = Literal["approve", "reject"]


@dataclass(frozen=True)
class ResponseCode:
    """A card's single-use licence to be updated: from the send's answer or a click event."""

    value: str
    issued: float  # seconds since the epoch: the send, or the click event's CreateTime


@dataclass(frozen=True)
class SentCard:
    msgid: str
    response_code: ResponseCode
    invalid_users: tuple[str, ...] = ()  # recipients WeCom could not deliver to; the others got the card


@dataclass(frozen=True)
class Button:
    """A button of a button_interaction card: a callback with `key`, or (with `url`) a link."""

    text: str
    key: str
    style: int = 1  # 1–4: WeCom's button colours
    url: str | None = None

    def json(self) -> dict[str, Any]:
        if self.url is not None:
            return {"type": 1, "text": self.text, "style": self.style, "url": self.url}
        return {"type": 0, "text": self.text, "style": self.style, "key": self.key}


class ResponseCodeRefused(WeComError):
    """The card can no longer be edited with this response_code: spent already, or over 72 hours old."""


def task_id(*parts: object) -> str:
    """A card's task_id from what identifies it (incident, announcement, time): joined with "-", characters WeCom
    refuses replaced by "_", the head kept when it is too long (put the distinguishing part first)."""
    text = _TASK_ID_CHARS.sub("_", "-".join(str(part) for part in parts))
    if not text:
        raise ValueError("a task_id needs at least one non-empty part")
    return text[:TASK_ID_LIMIT]  # ASCII only by now: characters are bytes


def decision_key(decision: Decision, proposal_id: int) -> str:
    """The key of a proposal's Approve or Reject button, e.g. "approve:42"."""
    return f"{decision}:{proposal_id}"


def parse_decision_key(key: str) -> tuple[Decision, int] | None:
    """The decision and proposal a button's key names; None for keys this module did not make."""
    decision, _, number = key.partition(":")
    if decision not in ("approve", "reject") or not number.isdecimal():
        return None
    return ("approve" if decision == "approve" else "reject"), int(number)


def approval_buttons(proposal_id: int, approve: str = "Approve", reject: str = "Reject") -> list[Button]:
    return [
        Button(approve, decision_key("approve", proposal_id), style=1),
        Button(reject, decision_key("reject", proposal_id), style=3),
    ]


def button_card(
    task: str, title: str, description: str, buttons: Sequence[Button], **fields: Any
) -> dict[str, Any]:
    """A `button_interaction` template card; `fields` adds others (sub_title_text, horizontal_content_list…)."""
    check_card(task, buttons)
    return {
        "card_type": "button_interaction",
        "main_title": {"title": title, "desc": description},
        "task_id": task,
        "button_list": [button.json() for button in buttons],
        **fields,
    }


def check_card(task: str, buttons: Sequence[Button]) -> None:
    """Refuse, before WeCom does, a task_id or buttons that break its rules."""
    if not task or len(task.encode()) > TASK_ID_LIMIT or _TASK_ID_CHARS.search(task):
        raise ValueError(f"task_id {task!r}: 1–{TASK_ID_LIMIT} bytes of 0-9 A-Z a-z _ - @ (see task_id())")
    if not 1 <= len(buttons) <= BUTTONS_LIMIT:
        raise ValueError(f"a button_interaction card has 1–{BUTTONS_LIMIT} buttons, not {len(buttons)}")
    keys = [button.key for button in buttons if button.url is None]
    if len(set(keys)) != len(keys) or any(not key or len(key.encode()) > KEY_LIMIT for key in keys):
        raise ValueError(f"button keys must be unique, 1–{KEY_LIMIT} bytes each: {keys}")


class TokenCache:
    """Access tokens by corp and secret, with when to replace them. Clients of one app share one, so that they
    fetch one token between them."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        """The token kept under `key`, or a new one from `fetch` (token, expires_in seconds)."""
        async with self._locks.setdefault(key, asyncio.Lock()):
            kept = self._tokens.get(key)
            if kept is not None and self._clock() < kept[1]:
                return kept[0]
            token, expires_in = await fetch()
            self._tokens[key] = (token, self._clock() + max(expires_in - _TOKEN_MARGIN, expires_in / 2))
            return token

    def drop(self, key: str, token: str) -> None:
        """Forget `token`, unless another call has replaced it already."""
        if self._tokens.get(key, ("", 0.0))[0] == token:
            del self._tokens[key]


class AppClient:
    """One self-built app (corp id, its secret and AgentId) on WeCom's server API."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        corp_id: str,
        corp_secret: str,
        agent_id: int,
        base_url: str = BASE_URL,
        tokens: TokenCache | None = None,
        time_limit: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._corp_id, self._secret, self.agent_id = corp_id, corp_secret, agent_id
        self._base = base_url.rstrip("/")
        self._tokens = tokens or TokenCache(clock)
        self._token_key = hashlib.sha256(f"{corp_id}\n{corp_secret}".encode()).hexdigest()
        self._time_limit = time_limit
        self._clock = clock
        self._spent: dict[str, float] = {}  # response codes this client used, with when they were issued

    async def send_template_card(
        self, touser: Sequence[str], card: Mapping[str, Any], *, toparty: Sequence[str] = ()
    ) -> SentCard:
        """Send a template card (see `button_card`) to the users, and the members of the departments `toparty`;
        returns its msgid and response_code."""
        message = self._message(touser, "template_card", card)
        if toparty:
            message["toparty"] = "|".join(toparty)
        answer = await self._call(SEND_PATH, message)
        msgid, code = answer.get("msgid"), answer.get("response_code")
        if not isinstance(msgid, str) or not isinstance(code, str) or not code:
            raise WeComError(
                "wecom: the answer to a template card has no msgid or response_code; is card_type "
                "button_interaction?",
                errcode=0,
                retryable=False,
            )
        return SentCard(msgid, ResponseCode(code, self._clock()), _invalid_users(answer))

    async def send_markdown(self, touser: Sequence[str], content: str) -> str:
        """Send a markdown message (at most `MARKDOWN_LIMIT` bytes; see `markdown.cut`); returns its msgid."""
        if len(content.encode("utf-8")) > MARKDOWN_LIMIT:
            raise WeComError(
                f"wecom: markdown of {len(content.encode())} bytes is over the app's {MARKDOWN_LIMIT}",
                errcode=0,
                retryable=False,
            )
        answer = await self._call(SEND_PATH, self._message(touser, "markdown", {"content": content}))
        return str(answer.get("msgid") or "")

    async def update_template_card(
        self,
        userids: Sequence[str],
        response_code: ResponseCode,
        *,
        replace_name: str | None = None,
        card: Mapping[str, Any] | None = None,
        partyids: Sequence[str] = (),
    ) -> None:
        """Grey the clicked card's buttons with `replace_name`, or replace the whole card with `card`, for `userids`
        (and the members of the departments `partyids`); spends `response_code`."""
        if (replace_name is None) == (card is None):
            raise ValueError("give either replace_name or card")
        self._check_unspent(response_code)
        body: dict[str, Any] = {
            "userids": list(userids),  # an array here, where message/send wants "a|b"
            "agentid": self.agent_id,
            "response_code": response_code.value,
        }
        if partyids:
            body["partyids"] = list(partyids)
        body.update({"button": {"replace_name": replace_name}} if card is None else {"template_card": card})
        try:
            await self._call(UPDATE_PATH, body)
        except WeComError as error:
            if error.retryable:  # WeCom did not take the code: a retry may spend it
                raise
            self._spent[response_code.value] = response_code.issued
            if error.errcode != 40058:
                raise
            raise ResponseCodeRefused(
                f"{error}; the response_code was refused (used already, or over 72 h old)",
                errcode=error.errcode,
                retryable=False,
            ) from None
        self._spent[response_code.value] = response_code.issued

    def _check_unspent(self, code: ResponseCode) -> None:
        now = self._clock()
        self._spent = {k: v for k, v in self._spent.items() if now - v < RESPONSE_CODE_LIFETIME}
        if code.value in self._spent:
            raise ResponseCodeRefused(
                "wecom: this response_code was used already; a card can be updated once per click",
                errcode=0,
                retryable=False,
            )
        if now - code.issued >= RESPONSE_CODE_LIFETIME:
            raise ResponseCodeRefused(
                "wecom: this response_code is over 72 hours old; the card can no longer be updated",
                errcode=0,
                retryable=False,
            )

    def _message(self, touser: Sequence[str], msgtype: str, content: Mapping[str, Any]) -> dict[str, Any]:
        if not touser:
            raise ValueError("a WeCom app message needs at least one recipient userid")
        return {"touser": "|".join(touser), "msgtype": msgtype, "agentid": self.agent_id, msgtype: content}

    async def _call(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST `body`; a token WeCom calls expired or invalid is dropped and the call made once more."""
        for attempt in (1, 2):
            token = await self._tokens.get(self._token_key, self._fetch_token)
            answer = await self._post(path, body, token)
            errcode = errcode_of(answer)
            if errcode == 0:
                return answer
            if errcode in TOKEN_REJECTED and attempt == 1:
                self._tokens.drop(self._token_key, token)
                continue
            raise refusal(f"wecom: {path}", errcode, str(answer.get("errmsg") or ""))
        raise AssertionError("unreachable")

    async def _post(self, path: str, body: Mapping[str, Any], token: str) -> dict[str, Any]:
        content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        return await self._request("POST", path, {"access_token": token}, content, headers)

    async def _fetch_token(self) -> tuple[str, float]:
        params = {"corpid": self._corp_id, "corpsecret": self._secret}
        answer = await self._request("GET", TOKEN_PATH, params)
        token, expires_in = answer.get("access_token"), answer.get("expires_in")
        errcode = errcode_of(answer)
        if errcode == 0 and isinstance(token, str) and token and isinstance(expires_in, int | float):
            return token, float(expires_in)
        raise refusal("wecom: gettoken", errcode, str(answer.get("errmsg") or "no access_token"))

    async def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        where = f"wecom: {path}"
        try:
            response = await self._http.request(
                method,
                self._base + path,
                params=params,
                content=content,
                headers=headers,
                timeout=self._time_limit,
            )
        except httpx.TransportError as error:
            # httpx's transport errors do not repeat the URL, whose query carries the token or the secret.
            raise WeComError(f"{where}: {type(error).__name__}: {error}", errcode=0, retryable=True) from None
        return answer_of(response, where)


def answer_of(response: httpx.Response, where: str) -> dict[str, Any]:
    """WeCom's JSON answer, or the gateway failure that came instead."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not response.is_success:
        raise gateway_failure(where, response.status_code, _retry_after(response))
    return answer


def errcode_of(answer: Mapping[str, Any]) -> int:
    try:
        return int(answer.get("errcode") or 0)
    except (TypeError, ValueError):
        return -1


def _invalid_users(answer: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(user for user in str(answer.get("invaliduser") or "").split("|") if user)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None
