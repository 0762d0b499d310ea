"""The Feishu app's inbound side: card clicks at `POST /callbacks/feishu` (HTTP callback mode) or over the long
connection (`callbacks: long_connection`), both answered by one `FeishuClicks`.

A request that does not prove it came from Feishu is answered 401 and nothing in it is read further.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse, Response

from aiops.channels.feishu import FeishuChannel, FeishuConfig
from aiops.channels.feishu import callback as feishu_callback
from aiops.channels.feishu.clicks import FeishuClicks
from aiops.channels.feishu.longconn import LongConnection
from aiops.channels.inbound import Deciders, Received
from aiops.web.responses import error

log = logging.getLogger("aiops.channels.feishu")
ROUTE = "/callbacks/feishu"


def clicks(deciders: Deciders) -> FeishuClicks:
    """What answers Feishu clicks, through the running service's decision path."""
    return FeishuClicks(deciders.decisions, deciders.templates)


class FeishuInbound:
    """One Feishu app's clicks: its callback route always, its long connection when configured."""

    def __init__(self, config: FeishuConfig, deciders: Deciders) -> None:
        self._config = config
        self.clicks = clicks(deciders)
        self._connection = (
            LongConnection(config, self.clicks) if config.callbacks == "long_connection" else None
        )

    def start(self) -> None:
        if self._connection is not None:
            self._connection.start()

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.stop()

    async def receive(self, request: Received) -> Response:
        """One Feishu callback: URL verification, or a card button click."""
        try:
            payload = feishu_callback.open_request(self._config, request.body, request.headers)
        except feishu_callback.Refused as refused:
            log.warning("refused a Feishu callback: %s", refused)
            return error(401, str(refused))
        if feishu_callback.is_url_verification(payload):
            return JSONResponse({"challenge": str(payload.get("challenge", ""))})
        if feishu_callback.event_type(payload) != feishu_callback.CARD_ACTION:
            return JSONResponse({})  # some other event this app subscribed to: acknowledged, ignored
        try:
            click = feishu_callback.click(payload)
        except feishu_callback.Malformed as malformed:
            log.warning("a Feishu click could not be read: %s", malformed)
            return JSONResponse(self.clicks.toast("error", refusal="malformed"))
        return JSONResponse(await self.clicks.answer(click))


def inbound(config: FeishuConfig, channel: FeishuChannel, deciders: Deciders) -> FeishuInbound:
    return FeishuInbound(config, deciders)
