"""What the signed group robots (`feishu_webhook`, `dingtalk_webhook`) share: fitting a message under
the platform's size limit, and posting it with transport failures mapped to retryable `ChannelError`s."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

import httpx
from jinja2 import Environment

from aiops.channels import ChannelError
from aiops.channels.fitting import Cut, fit
from aiops.channels.routing import Routing

# Robots' messages, fullest first: evidence goes first, then next steps, then alerts.
CUTS = (
    Cut(alerts=10, evidence=5, lines=3, output=15),
    Cut(alerts=10, evidence=3, lines=1, output=5, shortened=True),
    Cut(alerts=10, evidence=0, lines=0, output=0, shortened=True),
    Cut(alerts=10, evidence=0, lines=0, output=0, steps=3, shortened=True),
    Cut(alerts=10, evidence=0, lines=0, output=0, steps=0, shortened=True),
    Cut(alerts=3, evidence=0, lines=0, output=0, steps=0, shortened=True),
)
# Only the headline and links are left.
LAST_RESORT = Cut(alerts=1, evidence=0, lines=0, output=0, steps=0, proposals=0, shortened=True)


def fit_robot(build: Callable[[Cut], dict[str, Any]], limit: int) -> str:
    """A robot's message at the fullest cut under `limit` bytes; never fails."""
    return fit(build, CUTS, limit, last_resort=LAST_RESORT)


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
    results_on_card = False

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
