"""The outbox: chat messages delivered within each platform's limits, retried, edited in place, folded in a storm.

Each recorded notification has a `deliver` job whose serial key is the channel, so one channel's messages go out one
at a time, in order. Before sending, the outbox counts what the channel sent in the last minute and second and waits
(without counting a failed attempt) rather than be throttled. A later announcement of an incident edits the message
the first one created, where the platform can edit. When more messages wait than the channel may send in half a
minute — or half the minute's budget is spent and several wait — they are folded into one digest (counts by alert
and severity, links to the incidents), so that a storm reaches people within a minute instead of hours later, and no
incident is left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aiops import i18n
from aiops.channels import Channel, ChannelError, Digest, DigestEntry
from aiops.chat import Replying
from aiops.metrics import Metrics
from aiops.pipeline.notify import REFRESH, STORM
from aiops.queue import Deferred
from aiops.store import chat, incidents, notifications
from aiops.store.codec import loads
from aiops.store.jobs import Job

log = logging.getLogger("aiops.pipeline.outbox")


class Outbox:
    def __init__(
        self,
        engine: AsyncEngine,
        channels: Mapping[str, Channel],
        metrics: Metrics,
        base_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._channels = channels
        self._metrics = metrics
        self._base_url = base_url
        self._clock = clock

    async def handle(self, job: Job) -> None:
        """The `deliver` job."""
        await self.deliver(int(job.payload["notification_id"]))

    async def deliver(self, notification_id: int) -> str:
        """Send one notification; returns its new state. Raises `Deferred` to wait for the rate limit (or the
        platform's retry-after), or the retryable `ChannelError` for the queue's backoff."""
        async with self._engine.connect() as conn:
            note = await notifications.get(conn, notification_id)
            if note is None or note.get("state") != notifications.PENDING:
                return str(note["state"]) if note else "gone"
            channel = self._channels.get(note["channel"])
            if channel is None:
                return await self._settle(note, notifications.FAILED, "the channel is no longer configured")
            wait = await self._wait(conn, channel)
            if wait > 0:
                raise Deferred(wait, f"{channel.name} is at its rate limit")
            waiting = await notifications.waiting(conn, channel.name)
            recent = await notifications.sent_since(conn, channel.name, self._clock() - 60)
            handle = await notifications.handle_of(conn, note["incident_id"], channel.name)
        if note["purpose"] == REFRESH and handle is None:
            return await self._settle(note, notifications.SKIPPED, "nothing to edit on this channel")
        # A storm card is what a storm is read through: it goes out as itself, never folded into a digest.
        foldable = [item for item in waiting if item["purpose"] != STORM]
        if note["purpose"] != STORM and self._storm(channel, foldable, len(recent)):
            return await self._digest(channel, note, foldable)
        return await self._send(channel, note, handle)

    async def handle_reply(self, job: Job) -> None:
        """The `reply` job: a chat answer (aiops/chat/answers.py) sent where it was asked, within the channel's
        limits like its other messages, once."""
        message_id = int(job.payload["message_id"])
        async with self._engine.connect() as conn:
            row = await chat.get(conn, message_id)
            if row is None or row["reply_state"] != chat.PENDING:
                return
            channel = self._channels.get(row["channel"])
            if not isinstance(channel, Replying):
                await self._replied(message_id, chat.FAILED, "the channel cannot reply in chat")
                return
            wait = await self._wait(conn, channel)
        if wait > 0:
            raise Deferred(wait, f"{channel.name} is at its rate limit")
        try:
            await channel.reply(row["reply_to"], row["reply_body"])
        except ChannelError as error:
            log.warning("chat reply %d on %s failed: %s", message_id, channel.name, error)
            if not error.retryable:
                await self._replied(message_id, chat.FAILED, str(error))
                return
            if error.retry_after is not None:
                raise Deferred(error.retry_after, str(error)) from None
            raise
        await self._replied(message_id, chat.SENT)
        self._metrics.notifications.labels(channel.name, "reply").inc()

    async def _replied(self, message_id: int, state: str, error: str | None = None) -> None:
        async with self._engine.begin() as conn:
            await chat.settle_reply(conn, message_id, state, self._clock(), error)

    async def _wait(self, conn: AsyncConnection, channel: Channel) -> float:
        """Seconds until the channel may send again without passing its limits: its messages and its chat
        replies count together."""
        now = self._clock()
        limits, wait = channel.limits, 0.0
        for window, allowed in ((60.0, limits.per_minute), (1.0, limits.per_second)):
            if allowed is None:
                continue
            sent = await notifications.sent_since(conn, channel.name, now - window)
            if len(sent) >= allowed:
                wait = max(wait, sent[len(sent) - allowed] + window - now)
        return wait

    def _storm(self, channel: Channel, waiting: list[dict[str, Any]], sent_last_minute: int) -> bool:
        """Fold when more wait than half a minute's budget, or when half the minute's budget is spent already
        and more than one waits: the rest of the minute is kept for what comes next."""
        per_minute = channel.limits.per_minute
        if per_minute is None:
            return False
        half = max(2, per_minute // 2)
        return len(waiting) > half or (sent_last_minute >= half and len(waiting) > 1)

    async def _send(self, channel: Channel, note: dict[str, Any], handle: str | None) -> str:
        try:
            # The incident's card is edited as it changes; an action's result is a message of its own under it,
            # unless the channel shows results on the card itself (a DingTalk card's `last_action`).
            edits = ("updated", "resolved", REFRESH) + (("action",) if channel.results_on_card else ())
            if handle is not None and note["purpose"] in edits:
                await channel.update(handle, note["body"])
            else:
                new_handle = await channel.send(note["body"])
                # The incident's card is the message it was announced on; an action's or a storm's is not.
                if new_handle is not None and note["purpose"] not in ("action", STORM):
                    async with self._engine.begin() as conn:
                        await notifications.keep_handle(conn, note["incident_id"], channel.name, new_handle)
        except ChannelError as error:
            return await self._failed(channel, note, error)
        return await self._settle(note, notifications.SENT)

    async def _failed(self, channel: Channel, note: dict[str, Any], error: ChannelError) -> str:
        log.warning("notification %d to %s failed: %s", note["id"], channel.name, error)
        if not error.retryable:
            return await self._settle(note, notifications.FAILED, str(error))
        self._metrics.notifications.labels(channel.name, "retry").inc()
        if error.retry_after is not None:
            raise Deferred(error.retry_after, str(error))
        raise error  # the queue retries with backoff

    async def _digest(self, channel: Channel, note: dict[str, Any], waiting: list[dict[str, Any]]) -> str:
        """Fold everything waiting for the channel into one message, sent as this notification."""
        entries = tuple(_entry(item, self._base_url) for item in waiting)
        body = channel.render_digest(Digest(entries, self._base_url))
        try:
            await channel.send(body)
        except ChannelError as error:
            return await self._failed(channel, note, error)
        now = self._clock()
        async with self._engine.begin() as conn:
            for item in waiting:
                state = notifications.SENT if item["id"] == note["id"] else notifications.DIGESTED
                await notifications.mark(conn, item["id"], state, now)
                await incidents.add_event(
                    conn,
                    item["incident_id"],
                    "notified",
                    i18n.message(
                        "event_digested",
                        purpose=i18n.message(f"purpose_{item['purpose']}"),
                        channel=channel.name,
                    ),
                )
        self._metrics.notifications.labels(channel.name, "digest").inc()
        log.info("%d notifications to %s folded into one digest", len(waiting), channel.name)
        return notifications.SENT

    async def _settle(self, note: dict[str, Any], state: str, error: str | None = None) -> str:
        async with self._engine.begin() as conn:
            await notifications.mark(conn, note["id"], state, self._clock(), error)
            sent = state == notifications.SENT
            names = {"purpose": i18n.message(f"purpose_{note['purpose']}"), "channel": note["channel"]}
            said = (
                i18n.message("event_notified", **names)
                if sent
                else i18n.message("event_notify_failed", detail=error, **names)
            )
            await incidents.add_event(
                conn, note["incident_id"], "notified" if sent else "notify_failed", said
            )
        self._metrics.notifications.labels(note["channel"], state).inc()
        return state


def _entry(item: dict[str, Any], base_url: str) -> DigestEntry:
    raw = item["labels"]
    labels = (loads(raw) if isinstance(raw, str) else raw) or {}
    return DigestEntry(
        incident_id=item["incident_id"],
        title=item["title"] or "",
        severity=item["severity"] or "none",
        alertname=str(labels.get("alertname", "")),
        url=f"{base_url}/incidents/{item['incident_id']}",
    )
