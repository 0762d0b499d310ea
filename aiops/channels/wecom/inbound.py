"""The WeCom app's inbound side: its callbacks at `GET|POST /callbacks/wecom` (the URL check, card clicks, and the
text messages people write to the app).

A click is decided before the answer goes back — a decision is committed before WeCom is told it arrived — and the
card is edited after, with the click's response code, as the answer's background task. A text message is handed
to chat (`Deciders.chat`) before the answer: once it is committed, WeCom may stop retrying it. Messages to an app
are one to one, so each is direct and meant for aiops; they have no threads (a question names its incident, "#12").
"""

from __future__ import annotations

import logging

from starlette.responses import PlainTextResponse, Response

from aiops.channels.inbound import Deciders, Received, Routed
from aiops.channels.wecom.callback import TextMessage
from aiops.channels.wecom.channel import WeComChannel, WeComConfig
from aiops.channels.wecom.clicks import WECOM, WeComClicks
from aiops.chat import Asked, Listener

log = logging.getLogger("aiops.channels.wecom")
ROUTE = "/callbacks/wecom"


class WeComInbound(Routed):
    """One WeCom app's callbacks; no connection of its own."""

    def __init__(self, channel: WeComChannel, deciders: Deciders) -> None:
        super().__init__(channel)
        self._decisions = deciders.decisions
        self._chat: Listener | None = deciders.chat
        self.clicks = WeComClicks(channel)

    async def receive(self, request: Received) -> Response:
        answer = self.clicks.answer_callback(request.method, request.query, request.body)
        if answer.status != 200:
            log.warning("wecom %s: refused a callback: %s", self.channel.name, answer.body)
        if answer.message is not None:
            await self._hear(answer.message)  # a store failure answers 500: WeCom retries, and is heard then
            return PlainTextResponse("", 200)
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

    async def _hear(self, message: TextMessage) -> None:
        if self._chat is None:
            log.info(
                "wecom %s: chat is off; the message from %s is not answered",
                self.channel.name,
                message.user_id,
            )
            return
        heard = await self._chat.hear(asked(self.channel.name, message))
        log.debug(
            "wecom %s: message %s from %s %s", self.channel.name, message.msg_id, message.user_id, heard
        )


def asked(channel: str, message: TextMessage) -> Asked:
    """A text message to the app as chat sees it: direct, for aiops, answered to its writer."""
    return Asked(
        kind=WECOM,
        channel=channel,
        message_id=message.msg_id,
        user=message.user_id,
        text=message.content.strip(),
        direct=True,
        mentioned=True,
        conversation=message.user_id,
        reply_to={"user": message.user_id},
    )


def inbound(config: WeComConfig, channel: WeComChannel, deciders: Deciders) -> WeComInbound | None:
    """The callbacks clicks and messages arrive on, when the app's 接收消息 settings are given."""
    return WeComInbound(channel, deciders) if config.accepts_callbacks else None
