"""Callbacks from chat platforms: the buttons on a card, clicked in the chat.

Each channel kind of the registry that receives clicks over HTTP names its routes (`POST /callbacks/feishu`); a
request to one is read up to `MAX_BODY` and handed to the inbound side of the configured channel of that kind,
which proves where it came from (or answers 401) and decides the click.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aiops.channels.inbound import Inbound, Received
from aiops.channels.registry import KINDS, Kind
from aiops.service import Services
from aiops.web.responses import error

MAX_BODY = 64 * 1024  # a callback is a few kilobytes

InboundFor = Callable[[Services, Kind[Any, Any]], Inbound | None]


def configured(services: Services, kind: Kind[Any, Any]) -> Inbound | None:
    return services.receiving(kind)


def routes(inbound_for: InboundFor = configured) -> list[Route]:
    """A route per path the registry's kinds receive on."""
    return [_route(kind, path, inbound_for) for kind in KINDS for path in kind.routes]


def _route(kind: Kind[Any, Any], path: str, inbound_for: InboundFor) -> Route:
    async def endpoint(request: Request) -> Response:
        inbound = inbound_for(request.app.state.services, kind)
        if inbound is None:
            return error(404, f"no {kind.key} channel receives callbacks here (channels.{kind.key})")
        body = await _body(request)
        if body is None:
            return error(413, f"a callback is at most {MAX_BODY} bytes")
        query = dict(request.query_params)
        return await inbound.receive(Received(request.method, path, query, request.headers, body))

    return Route(path, endpoint, methods=list(kind.methods), name=f"{kind.key}_callback")


async def _body(request: Request) -> bytes | None:
    """The request body, or None past `MAX_BODY` (read no further than that)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
