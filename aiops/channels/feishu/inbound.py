"""The Feishu app's inbound side: card clicks and chat messages at `POST /callbacks/feishu` (HTTP callback mode)
or over the long connection (`callbacks: long_connection`); clicks are answered by one `FeishuClicks`, messages
handed to the chat listener by one `FeishuChat`.

A request that does not prove it came from Feishu is answered 401 and nothing in it is read further.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse, Response

from aiops.channels import ChannelError
from aiops.channels.feishu import FeishuChannel, FeishuConfig
from aiops.channels.feishu import callback as feishu_callback
from aiops.channels.feishu.clicks import FeishuClicks
from aiops.channels.feishu.longconn import LongConnection
from aiops.channels.feishu.messages import MESSAGE_RECEIVED, BotOpenId, FeishuChat
from aiops.channels.inbound import Deciders, Received
from aiops.web.responses import error

log = logging.getLogger("aiops.channels.feishu")
ROUTE = "/callbacks/feishu"


def clicks(deciders: Deciders) -> FeishuClicks:
    """What answers Feishu clicks, through the running service's decision path."""
    return FeishuClicks(deciders.decisions, deciders.templates)


class FeishuInbound:
    """One Feishu app's clicks and messages: its callback route always, its long connection when configured.
    `bot_open_id` finds the bot's own open_id (the channel's, asked of Feishu); without it, only
    channels.feishu.bot_open_id is known."""

    def __init__(
        self, config: FeishuConfig, deciders: Deciders, bot_open_id: BotOpenId | None = None
    ) -> None:
        self._config = config
        self.clicks = clicks(deciders)
        self.chat = FeishuChat(config.name, deciders.chat, bot_open_id or _configured(config))
        self._connection = (
            LongConnection(config, self.clicks, self.chat) if config.callbacks == "long_connection" else None
        )

    def start(self) -> None:
        if self._connection is not None:
            self._connection.start()

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.stop()

    async def receive(self, request: Received) -> Response:
        """One Feishu callback: URL verification, a card button click, or a chat message."""
        try:
            payload = feishu_callback.open_request(self._config, request.body, request.headers)
        except feishu_callback.Refused as refused:
            log.warning("refused a Feishu callback: %s", refused)
            return error(401, str(refused))
        if feishu_callback.is_url_verification(payload):
            return JSONResponse({"challenge": str(payload.get("challenge", ""))})
        if feishu_callback.event_type(payload) == MESSAGE_RECEIVED:
            if not await self.chat.deliver(payload):
                return error(503, "the message could not be recorded now; Feishu delivers it again")
            return JSONResponse({})
        if feishu_callback.event_type(payload) != feishu_callback.CARD_ACTION:
            return JSONResponse({})  # some other event this app subscribed to: acknowledged, ignored
        try:
            click = feishu_callback.click(payload)
        except feishu_callback.Malformed as malformed:
            log.warning("a Feishu click could not be read: %s", malformed)
            return JSONResponse(self.clicks.toast("error", refusal="malformed"))
        return JSONResponse(await self.clicks.answer(click))


def inbound(config: FeishuConfig, channel: FeishuChannel, deciders: Deciders) -> FeishuInbound:
    return FeishuInbound(config, deciders, channel.bot_open_id)


def _configured(config: FeishuConfig) -> BotOpenId:
    """The bot's open_id as configured, when no channel can ask Feishu for it."""

    async def bot_open_id() -> str:
        if config.bot_open_id is None:
            raise ChannelError("channels.feishu.bot_open_id is not set", retryable=False)
        return config.bot_open_id

    return bot_open_id
