"""Callbacks from chat platforms: the Approve / Reject buttons on a card, clicked in the chat.

`POST /callbacks/feishu` receives Feishu's `card.action.trigger` callbacks (HTTP callback mode). A request that does
not prove it came from Feishu is answered 401 and nothing in it is read further; a click is answered by
`FeishuClicks` (aiops/channels/feishu/clicks.py), as clicks over the long connection are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aiops.channels.feishu import FeishuConfig
from aiops.channels.feishu import callback as feishu_callback
from aiops.channels.feishu.clicks import FeishuClicks
from aiops.service import Services
from aiops.web.responses import error

log = logging.getLogger("aiops.web.callbacks")
MAX_BODY = 64 * 1024  # a callback is a few kilobytes

ConfigFor = Callable[[Services], FeishuConfig | None]


def feishu_config(services: Services) -> FeishuConfig | None:
    """The Feishu app whose callbacks this service receives: `channels.feishu` (or the first of a list that has
    callback keys)."""
    configured = getattr(services.settings.channels, "feishu", None)
    if isinstance(configured, list | tuple):
        configured = next((item for item in configured if item.accepts_callbacks), None)
    return configured if isinstance(configured, FeishuConfig) else None


def routes(config_for: ConfigFor = feishu_config) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        return await feishu(request, config_for(request.app.state.services))

    return [Route("/callbacks/feishu", endpoint, methods=["POST"], name="feishu_callback")]


async def feishu(request: Request, config: FeishuConfig | None) -> Response:
    """One Feishu callback: URL verification, or a card button click."""
    if config is None:
        return error(404, "no Feishu app is configured (channels.feishu)")
    body = await _body(request)
    if body is None:
        return error(413, f"a callback is at most {MAX_BODY} bytes")
    try:
        payload = feishu_callback.open_request(config, body, request.headers)
    except feishu_callback.Refused as refused:
        log.warning("refused a Feishu callback: %s", refused)
        return error(401, str(refused))
    if feishu_callback.is_url_verification(payload):
        return JSONResponse({"challenge": str(payload.get("challenge", ""))})
    if feishu_callback.event_type(payload) != feishu_callback.CARD_ACTION:
        return JSONResponse({})  # some other event this app subscribed to: acknowledged, ignored
    clicks = feishu_clicks(request.app.state.services)
    try:
        click = feishu_callback.click(payload)
    except feishu_callback.Malformed as malformed:
        log.warning("a Feishu click could not be read: %s", malformed)
        return JSONResponse(clicks.toast("error", refusal="malformed"))
    return JSONResponse(await clicks.answer(click))


def feishu_clicks(services: Services) -> FeishuClicks:
    return FeishuClicks(
        services.engine,
        services.approvals,
        services.settings.remediation.approvers,
        services.templates,
        services.settings.server.base_url,
        services.settings.grafana,
    )


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
