"""Chat messages to aiops, their replies, and the state of each thread (aiops/chat/)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from aiops.chat import Asked
from aiops.store.codec import dumps, loads

QUEUED, COMMAND, REFUSED, OVER_BUDGET = "queued", "command", "refused", "over_budget"
ANSWERED, FAILED, DONE = "answered", "failed", "done"
PENDING, SENT = "pending", "sent"


async def record(
    conn: AsyncConnection, asked: Asked, outcome: str, incident_id: int | None, now: float | None = None
) -> int | None:
    """Record a message once; its id, or None when the platform delivered it before."""
    row = await conn.execute(
        text(
            "INSERT INTO chat_messages (channel, kind, message_id, user_id, conversation, thread, incident_id,"
            " text, reply_to, direct, outcome, asked_at) VALUES (:channel, :kind, :message, :user, :conversation,"
            " :thread, :incident, :text, :reply_to, :direct, :outcome, :now)"
            " ON CONFLICT (channel, message_id) DO NOTHING RETURNING id"
        ),
        {
            "channel": asked.channel,
            "kind": asked.kind,
            "message": asked.message_id,
            "user": asked.user,
            "conversation": asked.conversation,
            "thread": asked.thread,
            "incident": incident_id,
            "text": asked.text,
            "reply_to": dumps(dict(asked.reply_to)),
            "direct": asked.direct,
            "outcome": outcome,
            "now": time.time() if now is None else now,
        },
    )
    found = row.scalar()
    return None if found is None else int(found)


async def get(conn: AsyncConnection, message_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(text("SELECT * FROM chat_messages WHERE id = :id"), {"id": message_id})).first()
    if row is None:
        return None
    found = dict(row._mapping)
    found["reply_to"] = loads(found["reply_to"]) or {}
    return found


async def asked_since(conn: AsyncConnection, kind: str, user: str, since: float) -> int:
    """How many questions `user` asked through `kind` since `since`: what the hourly budget counts (questions
    taken — queued, answered or failed — not commands, nor those refused or past the budget)."""
    row = await conn.execute(
        text(
            "SELECT COUNT(*) FROM chat_messages WHERE kind = :kind AND user_id = :user AND asked_at >= :since"
            " AND outcome IN ('queued', 'answered', 'failed')"
        ),
        {"kind": kind, "user": user, "since": since},
    )
    return int(row.scalar_one())


async def incident_of_handle(conn: AsyncConnection, channel: str, handle: str) -> int | None:
    """The incident whose card on `channel` is the message `handle`."""
    row = await conn.execute(
        text("SELECT incident_id FROM messages WHERE channel = :channel AND handle = :handle"),
        {"channel": channel, "handle": handle},
    )
    found = row.scalar()
    return None if found is None else int(found)


async def incident_exists(conn: AsyncConnection, incident_id: int) -> bool:
    row = await conn.execute(text("SELECT 1 FROM incidents WHERE id = :id"), {"id": incident_id})
    return row.scalar() is not None


async def set_reply(
    conn: AsyncConnection, message_id: int, outcome: str, body: str, incident_id: int | None = None
) -> None:
    """What the message's answer is, waiting for the outbox."""
    await conn.execute(
        text(
            "UPDATE chat_messages SET outcome = :outcome, reply_body = :body, reply_state = 'pending',"
            " answered_at = :now, incident_id = COALESCE(:incident, incident_id) WHERE id = :id"
        ),
        {"outcome": outcome, "body": body, "now": time.time(), "incident": incident_id, "id": message_id},
    )


async def settle_reply(
    conn: AsyncConnection, message_id: int, state: str, now: float, error: str | None = None
) -> None:
    await conn.execute(
        text(
            "UPDATE chat_messages SET reply_state = :state, reply_error = :error, replied_at = :now"
            " WHERE id = :id"
        ),
        {"state": state, "error": error, "now": now, "id": message_id},
    )


async def conversation(
    conn: AsyncConnection, channel: str, where: str, thread: str | None
) -> tuple[int | None, list[dict[str, str]]]:
    """The incident a thread is about and its last turns (questions and answers), oldest first."""
    row = (
        await conn.execute(
            text(
                "SELECT incident_id, turns FROM conversations WHERE channel = :channel"
                " AND conversation = :conversation AND thread = :thread"
            ),
            {"channel": channel, "conversation": where, "thread": thread or ""},
        )
    ).first()
    if row is None:
        return None, []
    return (None if row.incident_id is None else int(row.incident_id)), list(loads(row.turns) or [])


async def keep_conversation(
    conn: AsyncConnection,
    channel: str,
    where: str,
    thread: str | None,
    incident_id: int | None,
    turns: Sequence[Mapping[str, str]],
) -> None:
    await conn.execute(
        text(
            "INSERT INTO conversations (channel, conversation, thread, incident_id, turns, updated_at)"
            " VALUES (:channel, :conversation, :thread, :incident, :turns, :now)"
            " ON CONFLICT (channel, conversation, thread) DO UPDATE SET incident_id = excluded.incident_id,"
            " turns = excluded.turns, updated_at = excluded.updated_at"
        ),
        {
            "channel": channel,
            "conversation": where,
            "thread": thread or "",
            "incident": incident_id,
            "turns": dumps(list(turns)),
            "now": time.time(),
        },
    )


async def latest_delivery(conn: AsyncConnection, incident_id: int) -> int | None:
    """The delivery of the incident's newest triage: where a proposal made in chat joins the card's."""
    row = await conn.execute(
        text("SELECT delivery_id FROM triages WHERE incident_id = :id ORDER BY id DESC LIMIT 1"),
        {"id": incident_id},
    )
    found = row.scalar()
    return None if found is None else int(found)
