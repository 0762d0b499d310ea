"""Notify: announce the incident on every configured channel, once per delivery and channel."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.channels import Announcement, Channel, ChannelError
from aiops.metrics import Metrics
from aiops.store import incidents, notifications

log = logging.getLogger("aiops.pipeline.notify")
RETRY, ALREADY_SENT = "retry", "already_sent"


class NotifyLater(Exception):
    """A channel failed in a way that a later attempt may fix; the job is retried."""


async def notify(
    engine: AsyncEngine, channels: Sequence[Channel], announcement: Announcement, key: str, metrics: Metrics
) -> None:
    """`key` names what is being announced (the delivery): a retried job sends nothing already sent."""
    retry: list[str] = []
    for channel in channels:
        outcome = await _announce(
            engine, channel, announcement, f"{key}:{channel.name}:{announcement.purpose}"
        )
        metrics.notifications.labels(channel.name, outcome).inc()
        if outcome == RETRY:
            retry.append(channel.name)
    if retry:
        raise NotifyLater(f"delivery to {', '.join(retry)} failed and will be retried")


async def _announce(engine: AsyncEngine, channel: Channel, announcement: Announcement, dedup_key: str) -> str:
    incident_id = announcement.incident.id
    body = channel.render(announcement)
    async with engine.begin() as conn:
        state = await notifications.record(
            conn, incident_id, dedup_key, channel.name, announcement.purpose, body
        )
    if state == notifications.SENT:
        return ALREADY_SENT
    try:
        await channel.deliver(body)
    except ChannelError as error:
        log.warning("notification to %s failed: %s", channel.name, error)
        async with engine.begin() as conn:
            await notifications.settle(conn, dedup_key, notifications.FAILED, str(error))
            await incidents.add_event(conn, incident_id, "notify_failed", f"{channel.name}: {error}")
        return RETRY if error.retryable else notifications.FAILED
    async with engine.begin() as conn:
        await notifications.settle(conn, dedup_key, notifications.SENT)
        await incidents.add_event(
            conn, incident_id, "notified", f"{announcement.purpose} sent to {channel.name}"
        )
    return notifications.SENT
