"""The Discord app's inbound side: interactions at `POST /callbacks/discord` (its Interactions Endpoint URL).

A press is decided before the deferred update goes back — within Discord's 3 s, and committed before Discord is
told — and the message is edited after, through the interaction's token, as the answer's background task.

A slash command to aiops is handed to chat (`Deciders.chat`) first, then answered: "thinking…" (type 5) when an
answer is coming, whose `@original` the reply edits later; otherwise at once (type 4, seen by the asker alone) with
why none is: chat is off, the question was empty, or it was heard before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from jinja2 import Environment
from starlette.responses import JSONResponse, Response

from aiops.channels.decisions import Decisions
from aiops.channels.discord import markdown
from aiops.channels.discord.api import CONTENT_LIMIT
from aiops.channels.discord.channel import DiscordChannel, DiscordConfig
from aiops.channels.discord.clicks import DiscordClicks
from aiops.channels.discord.commands import asked
from aiops.channels.discord.interactions import (
    Interaction,
    Malformed,
    channel_message,
    deferred_channel_message,
)
from aiops.channels.inbound import Deciders, Received, Routed
from aiops.chat import Heard, Listener
from aiops.web.responses import error

log = logging.getLogger("aiops.channels.discord")
ROUTE = "/callbacks/discord"
_ANSWERED_LATER: frozenset[Heard] = frozenset({"queued", "refused"})  # chat sends a reply for these


class DiscordInbound(Routed):
    """One Discord app's interactions; no connection of its own. `clock` (seconds since the epoch) dates the
    commands' tokens."""

    def __init__(
        self, channel: DiscordChannel, deciders: Deciders, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(channel)
        self._discord = channel
        self._decisions: Decisions = deciders.decisions
        self._chat: Listener | None = deciders.chat
        self._templates: Environment = deciders.templates
        self._clock = clock
        self.clicks = DiscordClicks(channel)

    async def receive(self, request: Received) -> Response:
        answer = self.clicks.answer_interaction(request.headers, request.body)
        if answer.error is not None:
            log.warning("discord %s: refused an interaction: %s", self.channel.name, answer.error)
            return error(answer.status, answer.error)
        if answer.command is not None:
            return await self._command(answer.command)
        if answer.click is None:
            return JSONResponse(answer.body)
        token = answer.click.token
        decided = await self._decisions.decide(answer.click.press)
        edit = self.edit_after(decided, lambda body: self._discord.edit_clicked(token, body))
        return JSONResponse(answer.body, background=edit)

    async def _command(self, interaction: Interaction) -> Response:
        try:
            question = asked(self.channel.name, self._discord.config.command, interaction, self._clock())
        except Malformed as refused:
            log.warning("discord %s: refused a command: %s", self.channel.name, refused)
            return error(refused.status, str(refused))
        if self._chat is None:
            return JSONResponse(self._at_once("off"))
        heard = await self._chat.hear(question)
        log.debug(
            "discord %s: command %s from %s %s", self.channel.name, question.message_id, question.user, heard
        )
        return JSONResponse(deferred_channel_message() if heard in _ANSWERED_LATER else self._at_once(heard))

    def _at_once(self, why: str) -> dict[str, Any]:
        """The asker alone is told, now, why no answer follows."""
        text = self._templates.get_template("discord/chat_unanswered.md.j2").render(why=why).strip()
        return channel_message(
            {"content": markdown.cut(text, CONTENT_LIMIT), "allowed_mentions": {"parse": []}}, ephemeral=True
        )


def inbound(config: DiscordConfig, channel: DiscordChannel, deciders: Deciders) -> DiscordInbound:
    return DiscordInbound(channel, deciders)
