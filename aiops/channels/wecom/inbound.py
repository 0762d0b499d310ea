"""The WeCom app's inbound side: its callbacks at `GET|POST /callbacks/wecom` (the URL check, and card clicks).

A click is decided before the answer goes back — a decision is committed before WeCom is told it arrived — and the
card is edited after, with the click's response code, as the answer's background task.
"""

from __future__ import annotations

import logging

from starlette.background import BackgroundTask
from starlette.responses import PlainTextResponse, Response

from aiops.channels import ChannelError
from aiops.channels.decisions import Decided, Decisions
from aiops.channels.inbound import Deciders, Received
from aiops.channels.wecom.channel import WeComChannel, WeComConfig
from aiops.channels.wecom.clicks import WeComClicks

log = logging.getLogger("aiops.channels.wecom")
ROUTE = "/callbacks/wecom"


class WeComInbound:
    """One WeCom app's callbacks; no connection of its own."""

    def __init__(self, channel: WeComChannel, decisions: Decisions) -> None:
        self._channel = channel
        self._decisions = decisions
        self.clicks = WeComClicks(channel)

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def receive(self, request: Received) -> Response:
        answer = self.clicks.answer_callback(request.method, request.query, request.body)
        if answer.status != 200:
            log.warning("wecom %s: refused a callback: %s", self._channel.name, answer.body)
        if answer.click is None:
            return PlainTextResponse(answer.body, answer.status)
        try:
            decided = await self._decisions.decide(answer.click.press)
        except Exception:
            self.clicks.forget(answer.click)  # answered 500: WeCom sends it again, and the retry is decided
            raise
        edit = (
            BackgroundTask(self._edit, answer.click.task_id, decided)
            if decided.announcement is not None
            else None
        )
        return PlainTextResponse(answer.body, answer.status, background=edit)

    async def _edit(self, task_id: str, decided: Decided) -> None:
        """The clicked card, showing what became of its proposals."""
        assert decided.announcement is not None
        try:
            await self._channel.update(task_id, self._channel.render(decided.announcement))
        except ChannelError as error:
            log.warning("wecom %s: the card could not show the decision: %s", self._channel.name, error)


def inbound(config: WeComConfig, channel: WeComChannel, deciders: Deciders) -> WeComInbound | None:
    """The callbacks clicks arrive on, when the app's 接收消息 settings are given."""
    return WeComInbound(channel, deciders.decisions) if config.accepts_callbacks else None
