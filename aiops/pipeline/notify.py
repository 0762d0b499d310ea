"""Notify: announce the incident on every configured channel, once per delivery and channel.

The console is written to at once; chat channels get their message recorded in the outbox, with a `deliver` job,
in one transaction — the outbox (aiops/pipeline/outbox.py) sends it within the platform's limits.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.channels import Announcement, Channel, ChannelError
from aiops.channels.routing import Routing
from aiops.metrics import Metrics
from aiops.store import incidents, jobs, notifications

log = logging.getLogger("aiops.pipeline.notify")
RETRY, ALREADY_SENT = "retry", "already_sent"
DELIVER = "deliver"
REFRESH = "refresh"  # the purpose recorded for an edit-only card update


class NotifyLater(Exception):
    """A channel failed in a way that a later attempt may fix; the job is retried."""


async def notify(
    engine: AsyncEngine, channels: Sequence[Channel], announcement: Announcement, key: str, metrics: Metrics
) -> None:
    """`key` names what is being announced (the delivery): a retried job sends nothing already sent."""
    retry: list[str] = []
    for channel in channels:
        dedup_key = f"{key}:{channel.name}:{announcement.purpose}"
        routing = getattr(channel, "routing", None)
        addressed = announcement
        if isinstance(routing, Routing):
            if not routing.applies(announcement.incident.labels):
                continue
            addressed = dataclasses.replace(
                announcement, mentions=routing.mentions_for(announcement.incident.severity)
            )
        if announcement.refresh and channel.immediate:
            continue  # the console cannot edit; the action's own message said what happened
        if not channel.immediate:
            await _enqueue(engine, channel, addressed, dedup_key)
            metrics.notifications.labels(channel.name, "queued").inc()
            continue
        outcome = await _announce(engine, channel, addressed, dedup_key)
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
        await channel.send(body)
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


async def _enqueue(engine: AsyncEngine, channel: Channel, announcement: Announcement, dedup_key: str) -> None:
    body = channel.render(announcement)
    async with engine.begin() as conn:
        purpose = REFRESH if announcement.refresh else announcement.purpose
        notification_id = await notifications.enqueue(
            conn, announcement.incident.id, dedup_key, channel.name, purpose, body
        )
        if notification_id is not None:
            await jobs.enqueue(conn, DELIVER, f"channel:{channel.name}", {"notification_id": notification_id})
