"""What reaches aiops from a chat platform — card clicks over an HTTP route or a connection aiops opens — and what
the service hands a channel kind's inbound side to decide them.

A kind's registry entry (aiops/channels/registry.py) names its routes and builds its `Inbound` from the channel's
config, the built channel and a `Deciders`; the web app routes requests to it, the service starts and stops it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from jinja2 import Environment
from starlette.background import BackgroundTask
from starlette.responses import Response

from aiops.channels import Channel, ChannelError
from aiops.channels.decisions import Decided, Decisions
from aiops.chat import Listener

log = logging.getLogger("aiops.channels")


@dataclass(frozen=True)
class Deciders:
    """What an inbound side needs from the running service: the decision path its clicks go to, the templates
    its answers are rendered with, and where chat messages to aiops go (None: chat is off, messages are
    acknowledged and ignored)."""

    decisions: Decisions
    templates: Environment
    chat: Listener | None = None


@dataclass(frozen=True)
class Received:
    """A request to one of a kind's routes: `path` is the route's, `body` read whole (within the web app's
    limit), `query` the query string's parameters."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


class Inbound(Protocol):
    """One configured channel's inbound side. `start` opens its long-lived connection, if it has one (called from
    the service's loop once workers run); `stop` closes it; `receive` answers a request to one of the kind's
    routes. An answer that must be quick is given once the decision is committed; what follows it (editing the
    card) runs as the response's background task."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def receive(self, request: Received) -> Response: ...


class Routed:
    """The base of an inbound side that only answers its routes (it has no connection to start or stop), and
    edits the clicked card after its answer."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def start(self) -> None:
        """Nothing to open: requests come to its routes."""

    async def stop(self) -> None:
        """Nothing to close."""

    def edit_after(self, decided: Decided, edit: Callable[[str], Awaitable[None]]) -> BackgroundTask | None:
        """`edit` of the clicked card with its body as it now stands, as the answer's background task: when the
        decision changed what the card shows. A failed edit is logged; the card is edited again when the
        action's result is announced."""
        if decided.announcement is None:
            return None
        body = self.channel.render(decided.announcement)

        async def run() -> None:
            try:
                await edit(body)
            except ChannelError as error:
                log.warning("%s: the card could not show the decision: %s", self.channel.name, error)

        return BackgroundTask(run)
