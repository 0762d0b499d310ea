"""Correlate: a delivery joins the open incident of its alert group, or opens one; all alerts resolved → resolved.

An incident opened or resolved is annotated in Grafana (when configured) by a job enqueued in the same transaction.
"""

from __future__ import annotations

from typing import get_args

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aiops.grafana.annotations import Annotations
from aiops.models import Alert, AlertGroup, Change, Correlation
from aiops.payload import WebhookPayload
from aiops.store import deliveries, incidents

CHANGES: dict[str, Change] = {change: change for change in get_args(Change)}
_SEVERITY_RANK = {
    "critical": 0,
    "page": 0,
    "error": 1,
    "high": 1,
    "warning": 2,
    "medium": 2,
    "info": 3,
    "low": 3,
}


async def correlate(
    engine: AsyncEngine, delivery_id: int, annotations: Annotations | None = None
) -> Correlation:
    """Idempotent: a delivery correlated by an earlier, interrupted attempt is not applied twice."""
    async with engine.begin() as conn:
        payload, incident_id, change = await deliveries.load(conn, delivery_id)
        group = WebhookPayload.model_validate_json(payload).to_group()
        if incident_id is None or change not in CHANGES:
            incident_id, applied, new_firing = await _apply(conn, delivery_id, group)
            if annotations is not None and applied in ("opened", "resolved"):
                await annotations.record(conn, incident_id, applied)
        else:
            applied = CHANGES[change]
            new_firing = tuple(alert for alert in group.alerts if alert.status == "firing")
        incident = await incidents.get(conn, incident_id)
    assert incident is not None  # the row was read or written in this same transaction
    return Correlation(incident, applied, group.alerts, new_firing)


async def _apply(
    conn: AsyncConnection, delivery_id: int, group: AlertGroup
) -> tuple[int, Change, tuple[Alert, ...]]:
    current = await incidents.find_open(conn, group.group_key)
    if current is None:
        incident_id = await incidents.create(
            conn, group.group_key, title(group), severity(group), group.common_labels
        )
        await incidents.add_event(conn, incident_id, "opened", f"opened by {_names(group.alerts)}")
    else:
        incident_id = current.id
    new_firing = tuple(
        [alert for alert in group.alerts if await incidents.upsert_alert(conn, incident_id, alert)]
    )
    resolved = group.status == "resolved" and await incidents.all_resolved(conn, incident_id)
    await incidents.touch(conn, incident_id, resolved=resolved)
    change = _change(opened=current is None, resolved=resolved, new_firing=bool(new_firing))
    await _record_events(conn, incident_id, group, change, new_firing)
    await deliveries.mark_correlated(conn, delivery_id, incident_id, change)
    return incident_id, change, new_firing


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
            conn, incident_id, "alerts_added", f"new firing alerts: {_names(new_firing)}"
        )
    if change == "resolved":
        await incidents.add_event(conn, incident_id, "resolved", "all alerts resolved")
    if group.truncated_alerts:
        await incidents.add_event(
            conn,
            incident_id,
            "truncated",
            f"Alertmanager left {group.truncated_alerts} alert(s) out of this notification (max_alerts)",
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


def severity(group: AlertGroup) -> str:
    found = [alert.labels.get("severity", "") for alert in group.alerts if alert.labels.get("severity")]
    if group.common_labels.get("severity"):
        return group.common_labels["severity"]
    return min(found, key=lambda s: _SEVERITY_RANK.get(s.lower(), 9)) if found else "none"


def _names(alerts: tuple[Alert, ...]) -> str:
    return ", ".join(sorted({alert.name for alert in alerts}))
