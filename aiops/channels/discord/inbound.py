"""The Discord app's inbound side: interactions at `POST /callbacks/discord` (its Interactions Endpoint URL).

A press is decided before the deferred update goes back — within Discord's 3 s, and committed before Discord is
told — and the message is edited after, through the interaction's token, as the answer's background task.
"""

from __future__ import annotations

import logging

from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, Response

from aiops.channels import ChannelError
from aiops.channels.decisions import Decided, Decisions
from aiops.channels.discord.channel import DiscordChannel, DiscordConfig
from aiops.channels.discord.clicks import DiscordClicks
from aiops.channels.inbound import Deciders, Received
from aiops.web.responses import error

log = logging.getLogger("aiops.channels.discord")
ROUTE = "/callbacks/discord"


class DiscordInbound:
    """One Discord app's interactions; no connection of its own."""

    def __init__(self, channel: DiscordChannel, decisions: Decisions) -> None:
        self._channel = channel
        self._decisions = decisions
        self.clicks = DiscordClicks(channel)

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def receive(self, request: Received) -> Response:
        answer = self.clicks.answer_interaction(request.headers, request.body)
        if answer.error is not None:
            log.warning("discord %s: refused an interaction: %s", self._channel.name, answer.error)
            return error(answer.status, answer.error)
        if answer.click is None:
            return JSONResponse(answer.body)
        decided = await self._decisions.decide(answer.click.press)
        edit = (
            BackgroundTask(self._edit, answer.click.token, decided)
            if decided.announcement is not None
            else None
        )
        return JSONResponse(answer.body, background=edit)

    async def _edit(self, token: str, decided: Decided) -> None:
        """The pressed message, showing what became of its proposals."""
        assert decided.announcement is not None
        try:
            await self._channel.edit_clicked(token, self._channel.render(decided.announcement))
        except ChannelError as failure:
            log.warning(
                "discord %s: the message could not show the decision: %s", self._channel.name, failure
            )


def inbound(config: DiscordConfig, channel: DiscordChannel, deciders: Deciders) -> DiscordInbound:
    return DiscordInbound(channel, deciders.decisions)
