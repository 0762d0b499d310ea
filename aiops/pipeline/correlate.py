"""Correlate: a delivery joins the open incident of its alert group, or opens one; all alerts resolved → resolved.

A group's alerts are written `CHUNK` at a time, one short transaction each, so that a notification of thousands of
alerts never holds the store (one connection, on SQLite) for longer than one chunk: intake commits in between. The
first transaction also records the incident on the delivery; the last records what the delivery changed. A run
stopped in between is re-run from the stored payload and finds the same incident, and the alerts it newly fired
by their mark (`incidents.fired_by`), so that its answer is the one an uninterrupted run would have given. A group
small enough to be validated in one step (nearly all) is read, correlated and answered in one transaction.

An incident opened or resolved is annotated in Grafana (when configured) by a job enqueued in the same transaction
as the delivery's change.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import get_args

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aiops.grafana.annotations import Annotations
from aiops.i18n import message
from aiops.models import Alert, AlertGroup, Change, Correlation, severity_rank
from aiops.payload import SLICE, parse
from aiops.store import deliveries, incidents
from aiops.store.codec import to_epoch
from aiops.store.deliveries import Stored

CHANGES: dict[str, Change] = {change: change for change in get_args(Change)}
# Alerts written per transaction: big enough that an ordinary group takes one, small enough that intake waits
# a few milliseconds at most for the store between two chunks of a storm.
# At least `payload.SLICE`: a group validated in one step is written in one chunk too.
CHUNK = 500


async def correlate(
    engine: AsyncEngine, delivery_id: int, annotations: Annotations | None = None
) -> Correlation:
    """Idempotent: a delivery correlated by an earlier attempt is not applied twice, and one interrupted between
    chunks is finished as if it had not been."""
    async with engine.begin() as conn:
        stored = await deliveries.load(conn, delivery_id)
        if stored.alert_count <= SLICE:  # validated in one step: the whole correlation is one transaction
            return await _at_once(conn, delivery_id, stored, await parse(stored.payload), annotations)
    group = await parse(stored.payload)  # a big one in slices, leaving room for intake between them
    if stored.change in CHANGES:
        async with engine.begin() as conn:
            return await _recorded(conn, delivery_id, stored, group)
    first, *rest = [group.alerts[start : start + CHUNK] for start in range(0, len(group.alerts), CHUNK)]
    async with engine.begin() as conn:
        incident_id, opened = await _claim(conn, delivery_id, group, stored)
        await incidents.upsert_alerts(conn, incident_id, delivery_id, first)
        if not rest:
            return await _finish(conn, delivery_id, incident_id, group, opened, annotations)
    for chunk in rest[:-1]:
        async with _after_others(engine) as conn:
            await incidents.upsert_alerts(conn, incident_id, delivery_id, chunk)
    async with _after_others(engine) as conn:
        await incidents.upsert_alerts(conn, incident_id, delivery_id, rest[-1])
        return await _finish(conn, delivery_id, incident_id, group, opened, annotations)


@asynccontextmanager
async def _after_others(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction begun once the requests already waiting for the store have had it: the pool hands a
    returned connection to whoever asks first, and without yielding that would always be the next chunk."""
    await asyncio.sleep(0)
    async with engine.begin() as conn:
        yield conn


async def _at_once(
    conn: AsyncConnection,
    delivery_id: int,
    stored: Stored,
    group: AlertGroup,
    annotations: Annotations | None,
) -> Correlation:
    """A group of one chunk, in the caller's transaction."""
    if stored.change in CHANGES:
        return await _recorded(conn, delivery_id, stored, group)
    incident_id, opened = await _claim(conn, delivery_id, group, stored)
    await incidents.upsert_alerts(conn, incident_id, delivery_id, group.alerts)
    return await _finish(conn, delivery_id, incident_id, group, opened, annotations)


async def _recorded(
    conn: AsyncConnection, delivery_id: int, stored: Stored, group: AlertGroup
) -> Correlation:
    """The answer an earlier, finished correlation of the delivery gave."""
    assert stored.incident_id is not None and stored.change is not None  # both set by the last transaction
    opened = stored.opened_incident
    new_firing = await _new_firing(conn, delivery_id, stored.incident_id, group, opened)
    answer = await _answer(conn, stored.incident_id, group, CHANGES[stored.change], new_firing)
    return dataclasses.replace(answer, again=True)


async def _claim(
    conn: AsyncConnection, delivery_id: int, group: AlertGroup, stored: Stored
) -> tuple[int, bool]:
    """The delivery's incident, found or opened, and whether this delivery opened it; kept on the delivery, so
    that a re-run after a crash goes on with the same one."""
    if stored.incident_id is not None:
        return stored.incident_id, stored.opened_incident
    current = await incidents.find_open(conn, group.group_key)
    if current is not None:
        await deliveries.claim(conn, delivery_id, current.id, opened=False)
        return current.id, False
    incident_id = await incidents.create(
        conn, group.group_key, title(group), severity(group), group.common_labels
    )
    await incidents.add_event(
        conn, incident_id, "opened", message("event_opened", alerts=_names(group.alerts))
    )
    await deliveries.claim(conn, delivery_id, incident_id, opened=True)
    return incident_id, True


async def _finish(
    conn: AsyncConnection,
    delivery_id: int,
    incident_id: int,
    group: AlertGroup,
    opened: bool,
    annotations: Annotations | None,
) -> Correlation:
    resolved = group.status == "resolved" and await incidents.all_resolved(conn, incident_id)
    await incidents.touch(conn, incident_id, resolved=resolved)
    new_firing = await _new_firing(conn, delivery_id, incident_id, group, opened)
    change = _change(opened=opened, resolved=resolved, new_firing=bool(new_firing))
    await _record_events(conn, incident_id, group, change, new_firing)
    await deliveries.mark_correlated(conn, delivery_id, incident_id, change)
    if annotations is not None and change in ("opened", "resolved"):
        await annotations.record(conn, incident_id, change)
    return await _answer(conn, incident_id, group, change, new_firing)


async def _answer(
    conn: AsyncConnection, incident_id: int, group: AlertGroup, change: Change, new_firing: tuple[Alert, ...]
) -> Correlation:
    incident = await incidents.get(conn, incident_id)
    assert incident is not None  # the delivery names it, and incidents are never deleted
    return Correlation(incident, change, group.alerts, new_firing)


async def _new_firing(
    conn: AsyncConnection, delivery_id: int, incident_id: int, group: AlertGroup, opened: bool
) -> tuple[Alert, ...]:
    """The group's firing alerts that the incident had not seen firing before this delivery: all of them in an
    incident the delivery opened (the queue runs one delivery of a group at a time, so no other wrote to it)."""
    firing = tuple(alert for alert in group.alerts if alert.status == "firing")
    if opened:
        return firing
    fired = await incidents.fired_by(conn, incident_id, delivery_id)
    return tuple(alert for alert in firing if (alert.fingerprint, to_epoch(alert.starts_at)) in fired)


def _change(*, opened: bool, resolved: bool, new_firing: bool) -> Change:
    if resolved:
        return "resolved"
    if opened:
        return "opened"
    return "updated" if new_firing else "unchanged"


async def _record_events(
    conn: AsyncConnection, incident_id: int, group: AlertGroup, change: Change, new_firing: tuple[Alert, ...]
) -> None:
    if change == "updated":
        await incidents.add_event(
            conn, incident_id, "alerts_added", message("event_alerts_added", alerts=_names(new_firing))
        )
    if change == "resolved":
        await incidents.add_event(conn, incident_id, "resolved", message("event_resolved"))
    if group.truncated_alerts:
        await incidents.add_event(
            conn,
            incident_id,
            "truncated",
            message("event_truncated", count=group.truncated_alerts),
        )


def title(group: AlertGroup) -> str:
    """`HostOutOfDiskSpace · web-1:9100`, or the common `summary` annotation when there is one."""
    summary = group.common_annotations.get("summary")
    if summary:
        return summary[:200]
    names = sorted({alert.name for alert in group.alerts})
    head = names[0] if len(names) == 1 else f"{names[0]} +{len(names) - 1}"
    where = group.common_labels.get("instance") or group.common_labels.get("job")
    return f"{head} · {where}" if where else head


SEVERITY_LENGTH = 64  # incidents.severity is VARCHAR(64)


def severity(group: AlertGroup) -> str:
    """The group's severity label, or its alerts' most urgent one; cut to what the store keeps (64 characters)."""
    found = [alert.labels.get("severity", "") for alert in group.alerts if alert.labels.get("severity")]
    if group.common_labels.get("severity"):
        return group.common_labels["severity"][:SEVERITY_LENGTH]
    return min(found, key=severity_rank)[:SEVERITY_LENGTH] if found else "none"


def _names(alerts: tuple[Alert, ...]) -> str:
    return ", ".join(sorted({alert.name for alert in alerts}))
