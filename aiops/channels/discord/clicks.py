"""What the route at `POST /callbacks/discord` does with an interaction: `answer_interaction` verifies it and says
what to answer and which click (if any) to decide, or which command to hand to chat (`commands.py`).

Discord voids an interaction not answered within 3 s, so a button press is answered with a deferred update (type
6: the message stays as it is, no "thinking" state) as soon as its decision — one short transaction — is
committed. The message is then edited to the card as it now stands through the interaction's token
(`DiscordChannel.edit_clicked`, 15 minutes).
A bad signature is answered 401 and nothing else happens: Discord sends such requests on purpose and removes an
endpoint that accepts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiops.channels.decisions import Button, Press
from aiops.channels.discord.channel import DiscordChannel
from aiops.channels.discord.commands import DISCORD
from aiops.channels.discord.interactions import (
    APPLICATION_COMMAND,
    MESSAGE_COMPONENT,
    PING,
    Interaction,
    InteractionRefused,
    Malformed,
    Verifier,
    deferred_update,
    pong,
)


@dataclass(frozen=True)
class DiscordClick:
    """An approver's press of a message's button (`press`, for the decision path), and the interaction's `token`,
    which edits that message for 15 minutes (`DiscordChannel.edit_clicked`)."""

    press: Press
    message_id: str
    interaction_id: str
    token: str


@dataclass(frozen=True)
class InteractionAnswer:
    """What the route answers at once (`status`, and `body` as JSON when there is one) and the click to decide,
    or the command to hear first (its answer depends on what chat makes of it)."""

    status: int
    body: Mapping[str, Any] | None = None
    click: DiscordClick | None = None
    error: str | None = None
    command: Interaction | None = None


class DiscordClicks:
    """Reads one Discord channel's interactions; one per channel, for the life of the service."""

    def __init__(self, channel: DiscordChannel, verifier: Verifier | None = None) -> None:
        self._channel = channel
        self._verifier = verifier or Verifier(channel.config.public_key)

    def answer_interaction(self, headers: Mapping[str, str], raw: bytes) -> InteractionAnswer:
        try:
            interaction = self._verifier.verify(headers, raw)
        except (InteractionRefused, Malformed) as error:
            return InteractionAnswer(error.status, error=str(error))
        if interaction.type == PING:
            return InteractionAnswer(200, pong())
        if interaction.application_id != self._channel.config.application_id:
            return InteractionAnswer(400, error="the interaction is for another application")
        if interaction.type == APPLICATION_COMMAND:
            return InteractionAnswer(200, command=interaction)
        button = Button.parse(interaction.custom_id or "") if interaction.type == MESSAGE_COMPONENT else None
        if button is None or interaction.user_id is None or interaction.message_id is None:
            return InteractionAnswer(400, error="not a press of a button this service made")
        press = button.press(DISCORD, interaction.user_id)
        click = DiscordClick(press, interaction.message_id, interaction.id, interaction.token)
        return InteractionAnswer(200, deferred_update(), click)
