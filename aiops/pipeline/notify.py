"""Notify: announce the incident on every configured channel, once per delivery and channel.

The console is written to at once (recorded and settled in the transaction that writes it); chat channels get their message recorded in the outbox, with a `deliver` job,
in one transaction — the outbox (aiops/pipeline/outbox.py) sends it within the platform's limits.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from aiops import i18n
from aiops.channels import Announcement, Channel, ChannelError, Digest
from aiops.metrics import Metrics
from aiops.models import Incident
from aiops.store import incidents, jobs, notifications

log = logging.getLogger("aiops.pipeline.notify")
RETRY, ALREADY_SENT = "retry", "already_sent"
DELIVER = "deliver"
REFRESH = "refresh"  # the purpose recorded for an edit-only card update
STORM = "storm"  # the purpose recorded for a storm card: a message of its own, never an incident's card


class NotifyLater(Exception):
    """A channel failed in a way that a later attempt may fix; the job is retried."""


async def notify(
    engine: AsyncEngine, channels: Sequence[Channel], announcement: Announcement, key: str, metrics: Metrics
) -> None:
    """`key` names what is being announced (the delivery): a retried job sends nothing already sent."""
    retry: list[str] = []
    for channel in channels:
        routing = channel.routing
        addressed = announcement
        if routing is not None:
            if (
                not routing.applies(announcement.incident.labels)
                and channel.name not in announcement.escalate_to
            ):
                continue
            mentions = routing.mentions_for(announcement.incident.severity)
            mentions += tuple(announcement.escalation.get(channel.name, ()))
            addressed = dataclasses.replace(announcement, mentions=tuple(dict.fromkeys(mentions)))
        if announcement.refresh and channel.immediate:
            continue  # the console cannot edit; the action's own message said what happened
        purpose = REFRESH if announcement.refresh and not channel.immediate else announcement.purpose
        message = _Message(
            announcement.incident.id,
            purpose,
            channel.render(addressed),
            f"{key}:{channel.name}:{announcement.purpose}",
        )
        if await _post(engine, channel, message, metrics) == RETRY:
            retry.append(channel.name)
    if retry:
        raise NotifyLater(f"delivery to {', '.join(retry)} failed and will be retried")


async def notify_storm(
    engine: AsyncEngine,
    channels: Sequence[Channel],
    digest: Digest,
    incident: Incident,
    key: str,
    metrics: Metrics,
) -> None:
    """A storm card: the cluster's members as a digest, on every channel the lead incident is routed to."""
    retry: list[str] = []
    for channel in channels:
        routing = channel.routing
        if routing is not None and not routing.applies(incident.labels):
            continue
        message = _Message(incident.id, STORM, channel.render_digest(digest), f"{key}:{channel.name}")
        if await _post(engine, channel, message, metrics) == RETRY:
            retry.append(channel.name)
    if retry:
        raise NotifyLater(f"delivery to {', '.join(retry)} failed and will be retried")


@dataclass(frozen=True)
class _Message:
    incident_id: int
    purpose: str
    body: str
    dedup_key: str


async def _post(engine: AsyncEngine, channel: Channel, message: _Message, metrics: Metrics) -> str:
    """Send at once (the console) or leave it to the outbox; the outcome, for the metrics."""
    if channel.immediate:
        outcome = await _announce(engine, channel, message)
    else:
        await _enqueue(engine, channel, message)
        outcome = "queued"
    metrics.notifications.labels(channel.name, outcome).inc()
    return outcome


async def _announce(engine: AsyncEngine, channel: Channel, message: _Message) -> str:
    """Record, send and settle in one transaction: the console's write is local and does not wait. A crash before
    the commit leaves no record and the re-run writes the message again, as a crash between a write and its
    settlement would; a committed `sent` is never written twice."""
    incident_id, dedup_key = message.incident_id, message.dedup_key
    async with engine.begin() as conn:
        state = await notifications.record(
            conn, incident_id, dedup_key, channel.name, message.purpose, message.body
        )
        if state == notifications.SENT:
            return ALREADY_SENT
        purpose = i18n.message(f"purpose_{message.purpose}")
        try:
            await channel.send(message.body)
        except ChannelError as error:
            log.warning("notification to %s failed: %s", channel.name, error)
            await notifications.settle(conn, dedup_key, notifications.FAILED, str(error))
            failed = i18n.message("event_notify_failed", detail=error, purpose=purpose, channel=channel.name)
            await incidents.add_event(conn, incident_id, "notify_failed", failed)
            return RETRY if error.retryable else notifications.FAILED
        await notifications.settle(conn, dedup_key, notifications.SENT)
        sent = i18n.message("event_notified", purpose=purpose, channel=channel.name)
        await incidents.add_event(conn, incident_id, "notified", sent)
    return notifications.SENT


async def _enqueue(engine: AsyncEngine, channel: Channel, message: _Message) -> None:
    async with engine.begin() as conn:
        notification_id = await notifications.enqueue(
            conn, message.incident_id, message.dedup_key, channel.name, message.purpose, message.body
        )
        if notification_id is not None:
            await jobs.enqueue(conn, DELIVER, f"channel:{channel.name}", {"notification_id": notification_id})
