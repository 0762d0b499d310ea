"""The WeCom app's inbound side: its callbacks at `GET|POST /callbacks/wecom` (the URL check, and card clicks).

A click is decided before the answer goes back — a decision is committed before WeCom is told it arrived — and the
card is edited after, with the click's response code, as the answer's background task.
"""

from __future__ import annotations

import logging

from starlette.responses import PlainTextResponse, Response

from aiops.channels.decisions import Decisions
from aiops.channels.inbound import Deciders, Received, Routed
from aiops.channels.wecom.channel import WeComChannel, WeComConfig
from aiops.channels.wecom.clicks import WeComClicks

log = logging.getLogger("aiops.channels.wecom")
ROUTE = "/callbacks/wecom"


class WeComInbound(Routed):
    """One WeCom app's callbacks; no connection of its own."""

    def __init__(self, channel: WeComChannel, decisions: Decisions) -> None:
        super().__init__(channel)
        self._decisions = decisions
        self.clicks = WeComClicks(channel)

    async def receive(self, request: Received) -> Response:
        answer = self.clicks.answer_callback(request.method, request.query, request.body)
        if answer.status != 200:
            log.warning("wecom %s: refused a callback: %s", self.channel.name, answer.body)
        click = answer.click
        if click is None:
            return PlainTextResponse(answer.body, answer.status)
        try:
            decided = await self._decisions.decide(click.press)
        except Exception:
            self.clicks.forget(click)  # answered 500: WeCom sends it again, and the retry is decided
            raise
        # The card clicked, edited with the response code the click brought (kept by the channel).
        edit = self.edit_after(decided, lambda body: self.channel.update(click.task_id, body))
        return PlainTextResponse(answer.body, answer.status, background=edit)


def inbound(config: WeComConfig, channel: WeComChannel, deciders: Deciders) -> WeComInbound | None:
    """The callbacks clicks arrive on, when the app's 接收消息 settings are given."""
    return WeComInbound(channel, deciders.decisions) if config.accepts_callbacks else None
