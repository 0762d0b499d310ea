"""A Discord bot's REST calls: post a message with buttons, edit it, answer an interaction and edit its message,
within Discord's limits and its rate limits.

Limits (discord-api-docs, `resources/message.mdx`, `components/reference.mdx`): `content` at most 2,000 characters;
at most 10 embeds with a title of 256 and a description of 4,096, 25 fields of 256/1,024, and 6,000 in all; at most
5 action rows of 5 buttons; a button's `custom_id` 1–100 characters, unique in the message, and its label at most 80.
A message over them is refused here, before Discord answers 400.

Rate limits (`topics/rate-limits.mdx`): each answer says in `X-RateLimit-Bucket` which bucket its route shares,
with `-Remaining` and `-Reset-After` (seconds). Buckets are per major parameter (the channel, or the interaction's
webhook). A route whose bucket is empty waits for its reset. A 429 carries `retry_after` (seconds, a float) and
`global`; it is waited out and the request made again, at most `ATTEMPTS` times. A wait longer than `max_wait`
is not slept through: it raises a retryable error with `retry_after`, for the outbox to come back later. 401, 403 and
429 answers count toward Discord's ban of 10,000 invalid requests in 10 minutes, so none is retried blindly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from aiops.channels import ChannelError
from aiops.channels.discord.markdown import length

API = "https://discord.com/api/v10"
USER_AGENT = "DiscordBot (aiops, 0.1.0)"  # Discord asks every HTTP client to name itself this way
CONTENT_LIMIT = 2000
EMBEDS_LIMIT, EMBEDS_TOTAL = 10, 6000
EMBED_LIMITS = {"title": 256, "description": 4096, "footer.text": 2048, "author.name": 256}
FIELDS_LIMIT, FIELD_NAME_LIMIT, FIELD_VALUE_LIMIT = 25, 256, 1024
ROWS_LIMIT, BUTTONS_LIMIT, CUSTOM_ID_LIMIT, LABEL_LIMIT = 5, 5, 100, 80
PRIMARY, SECONDARY, SUCCESS, DANGER, LINK = 1, 2, 3, 4, 5
ATTEMPTS = 3
CUSTOM_ID_PREFIX = "aiops"
Decision = Literal["approve", "reject"]
# What an operator can do about the refusals a misconfiguration causes, by Discord's JSON error code.
_HINTS = {
    10003: "the channel_id is not a channel the bot can see",
    10008: "the message was deleted",
    10015: "the interaction's webhook is gone: its token lives 15 minutes",
    10062: "the interaction is unknown or over 3 s old: answer it at once (deferred_update) and edit later",
    40060: "the interaction was answered already: edit its message through edit_original instead",
    50001: "invite the bot to the channel's server and let it View Channel there",
    50013: "grant the bot Send Messages (and Read Message History for edits) in the channel",
    50035: "the message was refused as malformed (see errors)",
}


class DiscordError(ChannelError):
    """A refusal or failure from Discord; `status` is the HTTP status (0 when none came), `code` Discord's."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: int = 0,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.status, self.code = status, code


def custom_id(decision: Decision, proposal_id: int) -> str:
    """A proposal's button id, e.g. "aiops:approve:42"."""
    return f"{CUSTOM_ID_PREFIX}:{decision}:{proposal_id}"


def parse_custom_id(value: str) -> tuple[Decision, int] | None:
    """The decision and proposal a button names; None for ids this module did not make."""
    prefix, _, rest = value.partition(":")
    decision, _, number = rest.partition(":")
    if prefix != CUSTOM_ID_PREFIX or decision not in ("approve", "reject") or not number.isdecimal():
        return None
    return ("approve" if decision == "approve" else "reject"), int(number)


def button(label: str, *, style: int, custom: str | None = None, url: str | None = None) -> dict[str, Any]:
    """A button (component type 2): a callback with `custom`, or with style LINK, a link to `url`."""
    if (style == LINK) != (url is not None) or (style != LINK) != (custom is not None):
        raise ValueError("a link button has a url and no custom_id; the others a custom_id and no url")
    item: dict[str, Any] = {"type": 2, "style": style, "label": label}
    item.update({"url": url} if url is not None else {"custom_id": custom})
    return item


def row(*buttons: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(buttons)}


def approval_row(proposal_id: int, approve: str = "Approve", reject: str = "Reject") -> dict[str, Any]:
    return row(
        button(approve, style=SUCCESS, custom=custom_id("approve", proposal_id)),
        button(reject, style=DANGER, custom=custom_id("reject", proposal_id)),
    )


def message(
    content: str = "",
    *,
    embeds: Sequence[Mapping[str, Any]] = (),
    components: Sequence[Mapping[str, Any]] = (),
    mention_users: Sequence[str] = (),
) -> dict[str, Any]:
    """A message body that pings only `mention_users` (by id), whatever `<@…>`, `@everyone` or role its text holds."""
    body: dict[str, Any] = {
        "content": content,
        "allowed_mentions": {"parse": [], "users": list(mention_users)},
        "components": [dict(c) for c in components],
        "embeds": [dict(e) for e in embeds],
    }
    check_message(body)
    return body


def check_message(body: Mapping[str, Any]) -> None:
    """Refuse, before Discord does, a message over its limits, naming the one it breaks."""
    problem = (
        _content_problem(body)
        or _embeds_problem(body.get("embeds") or [])
        or _components_problem(body.get("components") or [])
    )
    if problem is not None:
        raise DiscordError(f"discord: {problem}", retryable=False)


def _content_problem(body: Mapping[str, Any]) -> str | None:
    size = length(str(body.get("content") or ""))
    return f"content of {size} characters is over {CONTENT_LIMIT}" if size > CONTENT_LIMIT else None


def _embeds_problem(embeds: Sequence[Mapping[str, Any]]) -> str | None:
    if len(embeds) > EMBEDS_LIMIT:
        return f"{len(embeds)} embeds, over {EMBEDS_LIMIT}"
    total = 0
    for embed in embeds:
        for name, limit in EMBED_LIMITS.items():
            size = length(_dig(embed, name))
            total += size
            if size > limit:
                return f"an embed's {name} of {size} characters is over {limit}"
        fields = embed.get("fields") or []
        if len(fields) > FIELDS_LIMIT:
            return f"an embed has {len(fields)} fields, over {FIELDS_LIMIT}"
        for field in fields:
            name_size, value_size = (
                length(str(field.get("name") or "")),
                length(str(field.get("value") or "")),
            )
            if name_size > FIELD_NAME_LIMIT or value_size > FIELD_VALUE_LIMIT:
                return f"an embed field is over {FIELD_NAME_LIMIT}/{FIELD_VALUE_LIMIT} characters"
            total += name_size + value_size
    return f"embeds of {total} characters in all, over {EMBEDS_TOTAL}" if total > EMBEDS_TOTAL else None


def _components_problem(rows: Sequence[Mapping[str, Any]]) -> str | None:
    if len(rows) > ROWS_LIMIT:
        return f"{len(rows)} action rows, over {ROWS_LIMIT}"
    ids: list[str] = []
    for action_row in rows:
        buttons = action_row.get("components") or []
        if action_row.get("type") != 1 or not 1 <= len(buttons) <= BUTTONS_LIMIT:
            return f"an action row (type 1) holds 1–{BUTTONS_LIMIT} buttons"
        for item in buttons:
            if length(str(item.get("label") or "")) > LABEL_LIMIT:
                return f"a button label is over {LABEL_LIMIT} characters"
            if item.get("style") != LINK:
                ids.append(str(item.get("custom_id") or ""))
    if any(not 1 <= len(i) <= CUSTOM_ID_LIMIT for i in ids) or len(set(ids)) != len(ids):
        return f"custom_ids must be unique and 1–{CUSTOM_ID_LIMIT} characters: {ids}"
    return None


def _dig(embed: Mapping[str, Any], dotted: str) -> str:
    value: Any = embed
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return str(value or "")


@dataclass
class _Bucket:
    remaining: int = 1
    reset_at: float = 0.0  # on the client's clock


class DiscordRest:
    """One bot application on Discord's REST API."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        bot_token: str,
        application_id: str,
        base_url: str = API,
        max_wait: float = 10.0,
        time_limit: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http
        self._token, self.application_id = bot_token, application_id
        self._base = base_url.rstrip("/")
        self._max_wait, self._time_limit = max_wait, time_limit
        self._clock, self._sleep = clock, sleep
        self._route_buckets: dict[str, str] = {}  # route → the bucket Discord says it shares
        self._buckets: dict[str, _Bucket] = {}  # bucket:major parameter → its state
        self._global_until = 0.0

    async def create_message(self, channel_id: str, body: Mapping[str, Any]) -> str:
        """Post `body` (see `message`) in the channel; returns the message id, the handle `edit_message` edits."""
        check_message(body)
        answer = await self._request("POST", "/channels/{}/messages", channel_id, "", body)
        return str(answer.get("id") or "")

    async def edit_message(self, channel_id: str, message_id: str, body: Mapping[str, Any]) -> None:
        check_message(body)
        await self._request("PATCH", "/channels/{}/messages/{}", channel_id, message_id, body)

    async def respond(self, interaction_id: str, token: str, response: Mapping[str, Any]) -> None:
        """The interaction's initial response (see `interactions`): within 3 s of the press, once."""
        await self._request(
            "POST", "/interactions/{}/callback", f"{interaction_id}/{token}", "", response, auth=False
        )

    async def edit_original(
        self, token: str, body: Mapping[str, Any], *, application_id: str | None = None
    ) -> None:
        """Edit the message an interaction came from (a button's message, or a command's deferred answer), after
        a deferred response, within 15 minutes; `application_id` is the interaction's, when it may differ."""
        check_message(body)
        major = f"{application_id or self.application_id}/{token}"
        await self._request("PATCH", "/webhooks/{}/messages/@original", major, "", body, auth=False)

    async def _request(
        self, method: str, route: str, major: str, minor: str, body: Mapping[str, Any], *, auth: bool = True
    ) -> dict[str, Any]:
        """Send, waiting out rate limits; `route` has `{}` for the major parameter (and the minor one, if any)."""
        path = route.format(major, minor) if minor else route.format(major)
        where = f"discord: {method} {route.format('…', '…')}"  # ids and interaction tokens stay out of errors
        for _ in range(ATTEMPTS):
            await self._wait(f"{method} {route}", major, where)
            response = await self._send(method, path, body, auth, where)
            self._learn(f"{method} {route}", major, response.headers)
            if response.status_code != 429:
                return self._answer(response, where)
            self._limited(f"{method} {route}", major, response, where)
        raise DiscordError(
            f"{where}: still rate limited after {ATTEMPTS} attempts", status=429, retryable=True
        )

    async def _send(
        self, method: str, path: str, body: Mapping[str, Any], auth: bool, where: str
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if auth:
            headers["Authorization"] = f"Bot {self._token}"
        try:
            return await self._http.request(
                method,
                self._base + path,
                content=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                headers=headers,
                timeout=self._time_limit,
            )
        except httpx.TransportError as error:
            raise DiscordError(f"{where}: {type(error).__name__}: {error}", retryable=True) from None

    async def _wait(self, route: str, major: str, where: str) -> None:
        now = self._clock()
        bucket = self._buckets.get(f"{self._route_buckets.get(route, route)}:{major}")
        wait = self._global_until - now
        if bucket is not None and bucket.remaining <= 0:
            wait = max(wait, bucket.reset_at - now)
        if wait > self._max_wait:
            raise DiscordError(
                f"{where}: rate limited for {wait:.1f} s", status=429, retryable=True, retry_after=wait
            )
        if wait > 0:
            await self._sleep(wait)

    def _learn(self, route: str, major: str, headers: httpx.Headers) -> None:
        """Keep what the rate-limit headers say of the route's bucket."""
        name = headers.get("x-ratelimit-bucket")
        if name is None:
            return
        self._route_buckets[route] = name
        try:
            remaining = int(headers["x-ratelimit-remaining"])
            reset_after = float(headers["x-ratelimit-reset-after"])
        except (KeyError, ValueError):
            return
        self._buckets[f"{name}:{major}"] = _Bucket(remaining, self._clock() + reset_after)

    def _limited(self, route: str, major: str, response: httpx.Response, where: str) -> None:
        """A 429: when the route (or, if global, every route) may be tried again."""
        answer = _json(response) or {}
        try:
            retry_after = float(answer.get("retry_after") or response.headers.get("retry-after") or 1.0)
        except ValueError:
            retry_after = 1.0
        until = self._clock() + retry_after
        if answer.get("global") or response.headers.get("x-ratelimit-global"):
            self._global_until = max(self._global_until, until)
        else:
            key = f"{self._route_buckets.get(route, route)}:{major}"
            self._buckets[key] = _Bucket(0, until)

    def _answer(self, response: httpx.Response, where: str) -> dict[str, Any]:
        answer = _json(response)
        if response.is_success:
            return answer or {}  # 204 for interaction callbacks
        raise _failure(response, answer, where)


def _failure(response: httpx.Response, answer: Mapping[str, Any] | None, where: str) -> DiscordError:
    """What a refusal means: 5xx (or a page that is not Discord's) may pass, the others will not."""
    status = response.status_code
    code = int((answer or {}).get("code") or 0)
    said = f"{where}: HTTP {status}"
    said += f", code {code}: {answer.get('message')}" if answer else " without a JSON answer"
    if status >= 500 or (answer is None and status != 401):
        return DiscordError(said, status=status, retryable=True)
    if status == 401:
        said += "; check the bot_token (Bot → Reset Token in the developer portal)"
    elif code in _HINTS:
        said += f"; {_HINTS[code]}"
    if answer and answer.get("errors"):
        said += f": {json.dumps(answer['errors'], separators=(',', ':'))[:500]}"
    return DiscordError(said, status=status, code=code, retryable=False)


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
