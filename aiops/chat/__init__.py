"""Asking aiops in chat: a message in a card's thread, a group message that mentions the bot, or a direct message
from an allow-listed asker becomes a question answered from the incident's evidence with read-only tools, or a
command ("ack", "silence 2h", "run X", "approve 12", "pause auto") decided on the path buttons take.

A channel kind's inbound side only translates: the platform's event into an `Asked`, handed to the `Listener`
(`Deciders.chat`), which records it — once per platform message id — and queues the answer; the answer goes back
through the outbox as a `Reply`, which each channel that can reply renders and sends where `Asked.reply_to` says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from aiops.models import Text

# What became of a message handed to the listener:
# - ignored: a group message that does not mention aiops, or an empty one; nothing stored, nothing answered;
# - duplicate: the platform delivered this message before; it is answered once;
# - refused: the person may not ask here (a direct message from someone not in `chat.askers`); a short refusal
#   is queued;
# - queued: recorded; its answer (or the budget's refusal) goes out through the outbox.
Heard = Literal["ignored", "duplicate", "refused", "queued"]


@dataclass(frozen=True)
class Asked:
    """One chat message to aiops, as its platform delivered it.

    `kind` is the channel kind (the key of `chat.askers` and `remediation.approvers`), `channel` the configured
    channel's name, whose `reply` answers it. `message_id` is the platform's own id of the message: a redelivery
    carries the same one. `text` is what the person wrote, the mention of the bot taken out. `conversation` is
    the chat (group or direct) it was written in; `thread` the message it answers in a thread, when it does — an
    incident's card, whose handle the outbox kept, makes the question about that incident. `reply_to` is what the
    channel needs to answer in the right place (a message id to reply to, a session webhook, an interaction
    token), kept with the reply in the outbox.
    """

    kind: str
    channel: str
    message_id: str
    user: str
    text: str
    direct: bool
    mentioned: bool
    conversation: str
    thread: str | None = None
    reply_to: Mapping[str, str] = field(default_factory=dict)


class Listener(Protocol):
    """What inbound sides hand chat messages to. `hear` returns once the message is committed (or known to be
    ignored), quickly enough for a platform's acknowledgement deadline; the answer comes later."""

    async def hear(self, asked: Asked) -> Heard: ...


@dataclass(frozen=True)
class Ran:
    """One read-only thing the answer ran: a PromQL or LogQL query, a catalog command, a lookup (`tool`), what it
    asked (`query`), and what it found in one line (`result`)."""

    tool: str
    query: str
    result: str


@dataclass(frozen=True)
class Reply:
    """What aiops answers in chat, whatever the platform: the answer's paragraphs, what it ran to find out
    (shown collapsed where the platform can), the incident it is about and its page, and whether it is a
    refusal (a stranger, a budget spent), which platforms may show more quietly."""

    lines: Sequence[Text]
    ran: Sequence[Ran] = ()
    incident_id: int | None = None
    incident_url: str | None = None
    refusal: bool = False
    # The person it answers, to @mention where a group reply would otherwise be lost (platform user id).
    to_user: str | None = None


@runtime_checkable
class Replying(Protocol):
    """A channel that answers chat messages: `render_reply` turns a `Reply` into the platform's body (within its
    size limit), `reply` sends it where `reply_to` (from `Asked.reply_to`) says, raising `ChannelError`."""

    def render_reply(self, reply: Reply) -> str: ...

    async def reply(self, reply_to: Mapping[str, str], body: str) -> None: ...
