"""Notifications: each announcement to a channel, recorded before it is sent so that it is sent once."""

from __future__ import annotations

import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

PENDING, SENT, FAILED = "pending", "sent", "failed"


async def record(
    conn: AsyncConnection, incident_id: int, dedup_key: str, channel: str, purpose: str, body: str
) -> str:
    """Record the notification unless an earlier attempt did; returns its state."""
    await conn.execute(
        text(
            "INSERT INTO notifications (incident_id, dedup_key, channel, purpose, state, body, attempts, created_at)"
            " VALUES (:incident, :key, :channel, :purpose, 'pending', :body, 0, :now)"
            " ON CONFLICT (dedup_key) DO NOTHING"
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
    state = await conn.execute(
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
