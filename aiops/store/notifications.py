"""Notifications: each announcement to a channel, recorded before it is sent so that it is sent once."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

PENDING, SENT, FAILED, DIGESTED, SKIPPED = "pending", "sent", "failed", "digested", "skipped"


async def record(
    conn: AsyncConnection, incident_id: int, dedup_key: str, channel: str, purpose: str, body: str
) -> str:
    """Record the notification unless an earlier attempt did; returns its state."""
    inserted = await conn.execute(
        text(
            "INSERT INTO notifications (incident_id, dedup_key, channel, purpose, state, body, attempts, created_at)"
            " VALUES (:incident, :key, :channel, :purpose, 'pending', :body, 0, :now)"
            " ON CONFLICT (dedup_key) DO NOTHING RETURNING state"
        ),
        {
            "incident": incident_id,
            "key": dedup_key,
            "channel": channel,
            "purpose": purpose,
            "body": body,
            "now": time.time(),
        },
    )
    new = inserted.scalar()
    if new is not None:
        return str(new)
    state = await conn.execute(  # recorded by an earlier attempt
        text("SELECT state FROM notifications WHERE dedup_key = :key"), {"key": dedup_key}
    )
    return str(state.scalar_one())


async def settle(conn: AsyncConnection, dedup_key: str, state: str, error: str | None = None) -> None:
    sent_at = time.time() if state == SENT else None
    await conn.execute(
        text(
            "UPDATE notifications SET state = :state, error = :error, attempts = attempts + 1,"
            " sent_at = COALESCE(:sent_at, sent_at) WHERE dedup_key = :key"
        ),
        {"state": state, "error": error, "sent_at": sent_at, "key": dedup_key},
    )


async def enqueue(
    conn: AsyncConnection, incident_id: int | None, dedup_key: str, channel: str, purpose: str, body: str
) -> int | None:
    """Record a notification for the outbox; its id, or None when an earlier attempt recorded it already."""
    row = await conn.execute(
        text(
            "INSERT INTO notifications (incident_id, dedup_key, channel, purpose, state, body, attempts, created_at)"
            " VALUES (:incident, :key, :channel, :purpose, 'pending', :body, 0, :now)"
            " ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
        ),
        {
            "incident": incident_id,
            "key": dedup_key,
            "channel": channel,
            "purpose": purpose,
            "body": body,
            "now": time.time(),
        },
    )
    found = row.scalar()
    return int(found) if found is not None else None


async def get(conn: AsyncConnection, notification_id: int) -> dict[str, Any] | None:
    row = (
        await conn.execute(text("SELECT * FROM notifications WHERE id = :id"), {"id": notification_id})
    ).first()
    return dict(row._mapping) if row is not None else None


async def mark(
    conn: AsyncConnection, notification_id: int, state: str, now: float, error: str | None = None
) -> None:
    await conn.execute(
        text(
            "UPDATE notifications SET state = :state, error = :error, attempts = attempts + 1,"
            " sent_at = COALESCE(:sent_at, sent_at) WHERE id = :id"
        ),
        {"state": state, "error": error, "sent_at": now if state == SENT else None, "id": notification_id},
    )


async def sent_since(conn: AsyncConnection, channel: str, since: float) -> list[float]:
    """When the channel's messages of the window were sent — its notifications and its chat replies — oldest
    first: what its rate limit counts."""
    rows = await conn.execute(
        text(
            "SELECT sent_at FROM notifications WHERE channel = :channel AND state = 'sent' AND sent_at >= :since"
            " UNION ALL SELECT replied_at FROM chat_messages WHERE channel = :channel AND reply_state = 'sent'"
            " AND replied_at >= :since ORDER BY sent_at"
        ),
        {"channel": channel, "since": since},
    )
    return [float(row.sent_at) for row in rows]


async def waiting(conn: AsyncConnection, channel: str) -> list[dict[str, Any]]:
    """The channel's notifications not yet delivered, oldest first, with their incident's title and labels."""
    rows = await conn.execute(
        text(
            "SELECT n.id, n.incident_id, n.purpose, i.title, i.severity, i.labels FROM notifications n"
            " LEFT JOIN incidents i ON i.id = n.incident_id"
            " WHERE n.channel = :channel AND n.state = 'pending' ORDER BY n.id"
        ),
        {"channel": channel},
    )
    return [dict(row._mapping) for row in rows]


async def handle_of(conn: AsyncConnection, incident_id: int, channel: str) -> str | None:
    row = await conn.execute(
        text("SELECT handle FROM messages WHERE incident_id = :incident AND channel = :channel"),
        {"incident": incident_id, "channel": channel},
    )
    found = row.scalar()
    return str(found) if found is not None else None


async def keep_handle(conn: AsyncConnection, incident_id: int, channel: str, handle: str) -> None:
    await conn.execute(
        text(
            "INSERT INTO messages (incident_id, channel, handle, created_at) VALUES (:incident, :channel, :handle,"
            " :now) ON CONFLICT (incident_id, channel) DO UPDATE SET handle = excluded.handle"
        ),
        {"incident": incident_id, "channel": channel, "handle": handle, "now": time.time()},
    )
