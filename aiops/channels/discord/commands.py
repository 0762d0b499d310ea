"""The slash command people ask aiops with — `/aiops question: why is web-1's disk filling?` — as chat's `Asked`.

A command is explicit, so it is always meant for aiops (`mentioned`). It is direct when run in a DM with the bot
(no guild, not a group DM). Run in a thread started from an incident's message, the thread's id is that message's
id, which is the handle `DiscordChannel.send` returned for the card: the question is about that incident.

The answer edits the interaction's `@original` ("aiops is thinking…") through its token, which lives 15 minutes
from the command; `reply_to` keeps when it expires, on this server's clock, and the channel to post in after that.
The command is registered once, by the operator, for the application:
`POST /applications/{application_id}/commands` with
`{"name": "aiops", "type": 1, "description": "Ask aiops", "options": [{"type": 3, "name": "question",
"description": "What to ask", "required": true}]}`.
"""

from __future__ import annotations

from aiops.channels.discord.interactions import GROUP_DM, Interaction, Malformed
from aiops.chat import Asked

DISCORD = "discord"
QUESTION = "question"
TOKEN_LIFETIME = 15 * 60.0  # seconds an interaction's token edits its @original


def asked(channel: str, command: str, interaction: Interaction, received: float) -> Asked:
    """The command `interaction` as chat hears it; `command` is the configured command's name, `received` when
    it arrived (seconds since the epoch)."""
    if interaction.command != command:
        raise Malformed(f"data.name is {interaction.command!r}, not the channel's command {command!r}")
    missing = [name for name, value in _needed(interaction) if not value]
    if missing:
        raise Malformed(f"the command interaction has no {', '.join(missing)}")
    user, conversation = str(interaction.user_id), str(interaction.channel_id)
    return Asked(
        kind=DISCORD,
        channel=channel,
        message_id=interaction.id,
        user=user,
        text=interaction.options.get(QUESTION, "").strip(),
        direct=interaction.guild_id is None and interaction.channel_type != GROUP_DM,
        mentioned=True,
        conversation=conversation,
        thread=conversation if interaction.in_thread else None,
        reply_to={
            "application_id": interaction.application_id,
            "token": interaction.token,
            "expires": f"{received + TOKEN_LIFETIME:.0f}",
            "channel_id": conversation,
        },
    )


def _needed(interaction: Interaction) -> list[tuple[str, str | None]]:
    return [
        ("id", interaction.id),
        ("token", interaction.token),
        ("member.user.id or user.id", interaction.user_id),
        ("channel_id", interaction.channel_id),
    ]
