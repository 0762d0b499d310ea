"""What the signed group robots (`feishu_webhook`, `dingtalk_webhook`) share: fitting a message under
the platform's size limit, and posting it with transport failures mapped to retryable `ChannelError`s."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import httpx
from jinja2 import Environment

from aiops.channels import ChannelError
from aiops.channels.routing import Routing

# Keys whose values are links: shortening them would leave a button or link that leads nowhere.
_LINK_KEYS = frozenset({"default_url", "actionURL", "url"})
_SHORTENED_LENGTHS = (1000, 300, 100)


@dataclass(frozen=True)
class Cut:
    """How much of an announcement a message shows. The first cut is what a reader needs at a glance; the later
    ones drop evidence, then next steps, then alerts, until the message fits. `None` shows everything."""

    alerts: int = 10
    evidence: int = 5
    lines: int = 3  # lines or series shown per evidence item
    output: int = 15  # last lines of an execution's stdout and stderr
    steps: int | None = None
    proposals: int | None = None
    shortened: bool = False  # the reader should be told that the message leaves out what it normally shows


CUTS = (
    Cut(),
    Cut(evidence=3, lines=1, output=5, shortened=True),
    Cut(evidence=0, lines=0, output=0, shortened=True),
    Cut(evidence=0, lines=0, output=0, steps=3, shortened=True),
    Cut(evidence=0, lines=0, output=0, steps=0, shortened=True),
    Cut(alerts=3, evidence=0, lines=0, output=0, steps=0, shortened=True),
)
LAST_RESORT = Cut(alerts=1, evidence=0, lines=0, output=0, steps=0, proposals=0, shortened=True)


def dumps(message: dict[str, Any]) -> str:
    """The message as posted: compact, and UTF-8 rather than \\u escapes, which would triple Chinese text."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def size(body: str) -> int:
    return len(body.encode("utf-8"))


def fit(build: Callable[[Cut], dict[str, Any]], limit: int) -> str:
    """The fullest rendering of `build` whose JSON body is at most `limit` bytes. Never fails: past the last cut,
    long strings are shortened (links excepted), and as a last resort only the headline and links are left."""
    for cut in CUTS:
        body = dumps(build(cut))
        if size(body) <= limit:
            return body
    squeezed = build(CUTS[-1])
    for length in _SHORTENED_LENGTHS:
        body = dumps(shorten(squeezed, length))
        if size(body) <= limit:
            return body
    return dumps(shorten(build(LAST_RESORT), _SHORTENED_LENGTHS[-1]))


def shorten(value: Any, length: int) -> Any:
    """`value` with every string longer than `length` characters cut to it, except links."""
    if isinstance(value, dict):
        return {key: item if key in _LINK_KEYS else shorten(item, length) for key, item in value.items()}
    if isinstance(value, list):
        return [shorten(item, length) for item in value]
    if isinstance(value, str) and len(value) > length:
        return value[: length - 1] + "…"
    return value


def line(text: str, limit: int) -> str:
    """`text` on one line of at most `limit` characters: a header or button label."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


async def post(
    http: httpx.AsyncClient, url: str, body: str, *, robot: str, time_limit: float
) -> dict[str, Any]:
    """POST a JSON body and return the robot's JSON answer. Unreachable, 5xx and 429 are retryable; an answer
    that is not a JSON object is not (the URL most likely points at something that is not the robot)."""
    headers = {"Content-Type": "application/json; charset=utf-8"}
    try:
        response = await http.post(url, content=body.encode("utf-8"), headers=headers, timeout=time_limit)
    except httpx.TransportError as error:
        # httpx's transport errors say what went wrong, not the URL (whose token is a credential).
        raise ChannelError(
            f"{robot} could not be reached: {type(error).__name__}: {error}", retryable=True
        ) from None
    if response.status_code >= 500 or response.status_code == 429:
        raise ChannelError(
            f"{robot} answered HTTP {response.status_code}",
            retryable=True,
            retry_after=retry_after(response),
        )
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ChannelError(
            f"{robot} answered HTTP {response.status_code} without a JSON object; check its url",
            retryable=False,
        )
    return answer


def retry_after(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds, when the platform sent one as a number."""
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


ConfigT = TypeVar("ConfigT", bound=Routing)


class Robot(Generic[ConfigT]):
    """What the two robot channels hold: their configuration (with its routing), templates, HTTP client, clock."""

    immediate = False

    def __init__(
        self,
        config: ConfigT,
        templates: Environment,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = config.name
        self.routing: Routing = config
        self._config = config
        self._templates = templates
        self._t = cast(Callable[..., str], templates.globals["t"])  # the catalog lookup of aiops.templating
        self._http = http
        self._clock = clock

    async def update(self, handle: str, body: str) -> None:
        raise ChannelError(f"{self.name}: a group robot cannot edit a message it sent", retryable=False)
