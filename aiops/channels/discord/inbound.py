"""The Discord app's inbound side: interactions at `POST /callbacks/discord` (its Interactions Endpoint URL).

A press is decided before the deferred update goes back — within Discord's 3 s, and committed before Discord is
told — and the message is edited after, through the interaction's token, as the answer's background task.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse, Response

from aiops.channels.decisions import Decisions
from aiops.channels.discord.channel import DiscordChannel, DiscordConfig
from aiops.channels.discord.clicks import DiscordClicks
from aiops.channels.inbound import Deciders, Received, Routed
from aiops.web.responses import error

log = logging.getLogger("aiops.channels.discord")
ROUTE = "/callbacks/discord"


class DiscordInbound(Routed):
    """One Discord app's interactions; no connection of its own."""

    def __init__(self, channel: DiscordChannel, decisions: Decisions) -> None:
        super().__init__(channel)
        self._discord = channel
        self._decisions = decisions
        self.clicks = DiscordClicks(channel)

    async def receive(self, request: Received) -> Response:
        answer = self.clicks.answer_interaction(request.headers, request.body)
        if answer.error is not None:
            log.warning("discord %s: refused an interaction: %s", self.channel.name, answer.error)
            return error(answer.status, answer.error)
        if answer.click is None:
            return JSONResponse(answer.body)
        token = answer.click.token
        decided = await self._decisions.decide(answer.click.press)
        edit = self.edit_after(decided, lambda body: self._discord.edit_clicked(token, body))
        return JSONResponse(answer.body, background=edit)


def inbound(config: DiscordConfig, channel: DiscordChannel, deciders: Deciders) -> DiscordInbound:
    return DiscordInbound(channel, deciders.decisions)
