"""Creating, delivering and editing cards, and the robot's chat replies, through DingTalk's Open API, and what its
answers mean for a retry.

Every call carries the app's access token in `x-acs-dingtalk-access-token`. The token is fetched once and kept until
five minutes before it expires: DingTalk throttles apps that fetch one per call. The SDK's own
helpers (`CardReplier`) use blocking `requests` without a timeout, so they are not used; httpx is.

Errors (DingTalk's "调用频次与限流" page, https://open.dingtalk.com/document/development/
how-to-process-api-throttling-on-the-dingtalk-server): the per-app and global per-second limits
answer `Forbidden.AccessDenied.QpsLimitForAppkeyAndApi` / `…QpsLimitForApi` and clear within a second; a standard
edition organisation's monthly quota answers `Forbidden.AccessDenied.ApiCountLimitForOrg`; an IP over 10,000 calls
in 20 s is refused for five minutes with `{"status": 1111, "wait": 5, "punish": "deny", …}` instead of a code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from aiops.channels import ChannelError
from aiops.channels.dingtalk.config import DingTalkConfig

CREATE_AND_DELIVER = "/v1.0/card/instances/createAndDeliver"
UPDATE = "/v1.0/card/instances"
GROUP_MESSAGE = "/v1.0/robot/groupMessages/send"
DIRECT_MESSAGES = "/v1.0/robot/oToMessages/batchSend"
MARKDOWN = "sampleMarkdown"  # the robot's message template for markdown: msgParam {"title", "text"}
RATE_LIMITED = frozenset(
    {"Forbidden.AccessDenied.QpsLimitForApi", "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"}
)
TOKEN_REJECTED = frozenset({"InvalidAuthentication"})  # the access token is unknown or has expired
# What an operator can do about the answers a misconfiguration causes.
_HINTS = {
    "Forbidden.AccessDenied.ApiCountLimitForOrg": "the organisation's monthly Open API quota is used up "
    "(standard edition: 5,000 calls a month); upgrade the DingTalk edition or wait for the next month",
    "Forbidden.AccessDenied.AccessTokenPermissionDenied": "grant the app the Card.Instance.Write permission "
    "(互动卡片实例写权限) and publish a new version of it",
    "param.openSpaceIdInvalid": "check channels.dingtalk.open_conversation_id",
}
_QPS_WINDOW = 1.0  # seconds: the per-second limits clear within one
_IP_BAN_MINUTES = 5.0
_TOKEN_MARGIN = 300.0  # seconds before its expiry that a token is replaced, as the SDK does


class OpenApi:
    """The two card calls a channel needs, and the access token they share."""

    def __init__(
        self, config: DingTalkConfig, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._http = http
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (token, when to replace it, on `clock`)
        self._fetching = asyncio.Lock()

    async def create_and_deliver(self, body: str) -> str:
        """Create the card and deliver it to the group; returns its outTrackId, the handle `update` edits."""
        message = json.loads(body)
        out_track_id = track_id(self._config, body)
        deliver: dict[str, Any] = {"robotCode": self._config.robot}
        if message.get("atUserIds"):
            deliver["atUserIds"] = message["atUserIds"]
        request = {
            "cardTemplateId": self._config.card_template_id,
            "outTrackId": out_track_id,
            "cardData": message["cardData"],
            "callbackType": "STREAM",  # clicks come back over the Stream connection, not to a URL
            "openSpaceId": f"dtv1.card//IM_GROUP.{self._config.open_conversation_id}",
            "imGroupOpenSpaceModel": {"supportForward": False},  # a forwarded card would carry live buttons
            "imGroupOpenDeliverModel": deliver,
            "userIdType": 1,  # callbacks then name the clicker by staff id, as remediation.approvers does
        }
        answer = await self._call("POST", CREATE_AND_DELIVER, request)
        _check_delivered(answer, self._config.name)
        return out_track_id

    async def update(self, out_track_id: str, body: str) -> None:
        """Replace the keys the body carries on the card behind `out_track_id`; the others stay as they are."""
        message = json.loads(body)
        request = {
            "outTrackId": out_track_id,
            "cardData": message["cardData"],
            "cardUpdateOptions": {"updateCardDataByKey": True},
            "userIdType": 1,
        }
        answer = await self._call("PUT", UPDATE, request)
        if answer.get("success") is False:
            raise ChannelError(
                f"dingtalk {self._config.name}: card update refused: {answer}", retryable=False
            )

    async def send_markdown(self, reply_to: Mapping[str, str], title: str, text: str) -> None:
        """Post markdown as the app's robot: into the group `reply_to` names, or to the person of a direct chat."""
        request: dict[str, Any] = {
            "robotCode": self._config.robot,
            "msgKey": MARKDOWN,
            "msgParam": json.dumps({"title": title, "text": text}, ensure_ascii=False),
        }
        if reply_to.get("conversation_type") == "2":
            request["openConversationId"] = _needed(reply_to, "conversation_id", self._config.name)
            await self._call("POST", GROUP_MESSAGE, request)
            return
        user = _needed(reply_to, "user", self._config.name)
        answer = await self._call("POST", DIRECT_MESSAGES, {**request, "userIds": [user]})
        _check_received(answer, user, self._config.name)

    async def _call(self, method: str, path: str, request: Mapping[str, Any]) -> dict[str, Any]:
        token = await self.access_token()
        where = f"dingtalk {self._config.name}: {method} {path}"
        response = await self._send(method, self._config.api + path, request, where, token)
        answer = _json(response)
        if response.is_success and answer is not None and not _banned(answer):
            return answer
        raise self._failure(where, response, answer)

    async def _send(
        self, method: str, url: str, request: Mapping[str, Any], where: str, token: str | None = None
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if token is not None:
            headers["x-acs-dingtalk-access-token"] = token
        content = json.dumps(request, ensure_ascii=False).encode("utf-8")
        try:
            return await self._http.request(
                method, url, content=content, headers=headers, timeout=self._config.timeout
            )
        except httpx.TransportError as error:
            # The error's text never carries the token (a header) or the secret (the token request's body).
            raise ChannelError(f"{where} failed: {type(error).__name__}: {error}", retryable=True) from None

    def _failure(self, where: str, response: httpx.Response, answer: dict[str, Any] | None) -> ChannelError:
        code = str((answer or {}).get("code") or "")
        said = _said(where, response, answer)
        retry = _retryable(said, response, answer)
        if retry is not None:
            return retry
        if response.status_code == 401 or code in TOKEN_REJECTED:
            self._token = None  # the next attempt fetches a new one
            return ChannelError(
                f"{said}; the access token was refused, a new one will be fetched", retryable=True
            )
        hint = _HINTS.get(code)
        return ChannelError(f"{said}; {hint}" if hint else said, retryable=False)

    async def access_token(self) -> str:
        """The app's access token, fetched when there is none or the one kept is about to expire."""
        async with self._fetching:
            if self._token is not None and self._clock() < self._token[1]:
                return self._token[0]
            token, expires_in = await self._fetch_token()
            self._token = (token, self._clock() + max(expires_in - _TOKEN_MARGIN, expires_in / 2))
            return token

    async def _fetch_token(self) -> tuple[str, float]:
        where = f"dingtalk {self._config.name}: the access token request"
        credentials = {
            "appKey": self._config.client_id,
            "appSecret": self._config.client_secret.get_secret_value(),
        }
        response = await self._send("POST", self._config.token_endpoint, credentials, where)
        answer = _json(response) or {}
        token, expires_in = answer.get("accessToken"), answer.get("expireIn")
        if response.is_success and isinstance(token, str) and token and isinstance(expires_in, int | float):
            return token, float(expires_in)
        said = _said(where, response, answer)
        retry = _retryable(said, response, answer)
        if retry is not None:
            raise retry
        name = self._config.name
        raise ChannelError(
            f"{said}; check channels.dingtalk {name}'s client_id (AppKey) and client_secret (AppSecret)",
            retryable=False,
        )


def track_id(config: DingTalkConfig, body: str) -> str:
    """The card's outTrackId: derived from what it shows and where, so that a retry after a lost answer names the
    same card instead of posting a second one."""
    digest = hashlib.sha256(f"{config.open_conversation_id}\n{body}".encode()).hexdigest()
    return f"aiops-{digest[:32]}"


def _retryable(said: str, response: httpx.Response, answer: dict[str, Any] | None) -> ChannelError | None:
    """The answers a later attempt may get past, with when to try again; None for the others."""
    code = str((answer or {}).get("code") or "")
    if response.status_code == 429 or code in RATE_LIMITED:
        return ChannelError(said, retryable=True, retry_after=_retry_after(response) or _QPS_WINDOW)
    if answer is not None and _banned(answer):
        minutes = answer.get("wait")
        wait = float(minutes) if isinstance(minutes, int | float) else _IP_BAN_MINUTES
        return ChannelError(f"{said}; this IP is refused for a while", retryable=True, retry_after=wait * 60)
    if response.status_code >= 500 or answer is None:
        # No JSON at all: a gateway's or proxy's page (DingTalk's IP throttle answers with one too).
        return ChannelError(said, retryable=True, retry_after=_retry_after(response))
    return None


def _banned(answer: Mapping[str, Any]) -> bool:
    """DingTalk's answer to an IP over its call rate, which carries no error code."""
    return answer.get("punish") == "deny" or answer.get("status") == 1111


def _check_delivered(answer: Mapping[str, Any], name: str) -> None:
    """createAndDeliver answers 200 even when the card reached no one; each space's result says."""
    result = answer.get("result") or {}
    failed = [
        r for r in result.get("deliverResults") or [] if isinstance(r, dict) and r.get("success") is False
    ]
    if answer.get("success") is False or failed:
        reasons = "; ".join(str(r.get("errorMsg") or r) for r in failed) or str(answer)
        raise ChannelError(
            f"dingtalk {name}: the card was not delivered ({reasons}); add the app's robot to the group "
            "channels.dingtalk.open_conversation_id and check robot_code",
            retryable=False,
        )


def _needed(reply_to: Mapping[str, str], key: str, name: str) -> str:
    value = reply_to.get(key)
    if not value:
        raise ChannelError(f"dingtalk {name}: the reply has no {key} to be sent to", retryable=False)
    return value


def _check_received(answer: Mapping[str, Any], user: str, name: str) -> None:
    """batchSend answers 200 and lists the people it did not reach: unknown ones, and those over their limit."""
    if user in (answer.get("flowControlledStaffIdList") or []):
        raise ChannelError(
            f"dingtalk {name}: {user} gets too many robot messages for now", retryable=True, retry_after=60.0
        )
    if user in (answer.get("invalidStaffIdList") or []):
        raise ChannelError(
            f"dingtalk {name}: {user} is not a staff id of the organisation the robot can write to",
            retryable=False,
        )


def _said(where: str, response: httpx.Response, answer: Mapping[str, Any] | None) -> str:
    if answer is None:
        return f"{where}: HTTP {response.status_code} without a JSON answer"
    code, message = answer.get("code") or "", answer.get("message") or ""
    request_id = answer.get("requestid") or answer.get("requestId")
    said = f"{where}: HTTP {response.status_code}" + (f", code {code}: {message}" if code or message else "")
    return said + (f" (requestid {request_id})" if request_id else "")


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None
