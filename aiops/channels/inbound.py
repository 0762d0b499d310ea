"""What reaches aiops from a chat platform — card clicks over an HTTP route or a connection aiops opens — and what
the service hands a channel kind's inbound side to decide them.

A kind's registry entry (aiops/channels/registry.py) names its routes and builds its `Inbound` from the channel's
config, the built channel and a `Deciders`; the web app routes requests to it, the service starts and stops it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from aiops.actions.approvals import Approvals
from aiops.grafana import GrafanaConfig


@dataclass(frozen=True)
class Deciders:
    """What an inbound side needs from the running service to turn a click into a decision and answer it."""

    engine: AsyncEngine
    approvals: Approvals
    templates: Environment
    base_url: str  # the service's public URL, for the links on a refreshed card
    grafana: GrafanaConfig = field(default_factory=GrafanaConfig)


class Inbound(Protocol):
    """One configured channel's inbound side. `start` opens its long-lived connection, if it has one (called from
    the service's loop once workers run); `stop` closes it; `receive` answers a request to one of the kind's
    routes (`path` is the route's, `body` read whole, within the web app's limit)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def receive(self, path: str, body: bytes, headers: Mapping[str, str]) -> Response: ...
