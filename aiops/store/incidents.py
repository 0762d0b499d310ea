"""Incidents and what hangs off them: alerts, triages, notifications and the timeline of events."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncConnection

from aiops.i18n import from_column, to_column
from aiops.models import (
    Alert,
    Correlation,
    Diagnosis,
    Evidence,
    Incident,
    RunbookMatch,
    StageError,
    Text,
    Triage,
)
from aiops.store.codec import dumps, from_epoch, loads, to_epoch


async def find_open(conn: AsyncConnection, group_key: str) -> Incident | None:
    row = (
        await conn.execute(
            text("SELECT * FROM incidents WHERE group_key = :key AND status = 'open'"), {"key": group_key}
        )
    ).one_or_none()
    return None if row is None else _incident(row._mapping)


async def get(conn: AsyncConnection, incident_id: int) -> Incident | None:
    row = (
        await conn.execute(text("SELECT * FROM incidents WHERE id = :id"), {"id": incident_id})
    ).one_or_none()
    return None if row is None else _incident(row._mapping)


async def create(
    conn: AsyncConnection, group_key: str, title: str, severity: str, labels: Mapping[str, str]
) -> int:
    now = time.time()
    row = (
        await conn.execute(
            text(
                "INSERT INTO incidents (group_key, status, title, severity, labels, opened_at, updated_at,"
                " last_received_at, repeats) VALUES (:key, 'open', :title, :severity, :labels, :now, :now, :now, 0)"
                " RETURNING id"
            ),
            {"key": group_key, "title": title, "severity": severity, "labels": dumps(labels), "now": now},
        )
    ).one()
    return int(row.id)


async def touch(conn: AsyncConnection, incident_id: int, *, resolved: bool) -> None:
    now = time.time()
    await conn.execute(
        text(
            "UPDATE incidents SET updated_at = :now, last_received_at = :now,"
            " status = CASE WHEN :resolved THEN 'resolved' ELSE status END,"
            " resolved_at = CASE WHEN :resolved THEN :now ELSE resolved_at END WHERE id = :id"
        ),
        {"now": now, "resolved": resolved, "id": incident_id},
    )


async def upsert_alerts(
    conn: AsyncConnection, incident_id: int, delivery_id: int, alerts: Sequence[Alert]
) -> None:
    """Record the alerts' latest state, in one batched statement. An alert turning firing (new to the incident,
    or firing again) is marked with `delivery_id`; an alert already firing keeps its mark, so `fired_by` answers
    the same for a delivery written twice (a re-run after a crash) as for one written once."""
    now = time.time()
    rows = [
        {
            "incident": incident_id,
            "fingerprint": alert.fingerprint,
            "starts": to_epoch(alert.starts_at),
            "name": alert.name,
            "status": alert.status,
            "labels": dumps(alert.labels),
            "annotations": dumps(alert.annotations),
            "ends": to_epoch(alert.ends_at) if alert.ends_at else None,
            "url": alert.generator_url,
            "now": now,
            "fired": delivery_id if alert.status == "firing" else None,
        }
        for alert in alerts
    ]
    await conn.execute(
        text(
            "INSERT INTO alerts (incident_id, fingerprint, starts_at, name, status, labels, annotations, ends_at,"
            " generator_url, updated_at, firing_delivery_id) VALUES (:incident, :fingerprint, :starts, :name,"
            " :status, :labels, :annotations, :ends, :url, :now, :fired)"
            " ON CONFLICT (incident_id, fingerprint, starts_at) DO UPDATE SET status = excluded.status,"
            " labels = excluded.labels, annotations = excluded.annotations, ends_at = excluded.ends_at,"
            " updated_at = excluded.updated_at, firing_delivery_id = CASE WHEN alerts.status = 'firing'"
            " OR excluded.status <> 'firing' THEN alerts.firing_delivery_id ELSE excluded.firing_delivery_id END"
        ),
        rows,
    )


async def fired_by(conn: AsyncConnection, incident_id: int, delivery_id: int) -> set[tuple[str, float]]:
    """(fingerprint, starts_at) of the incident's alerts that `delivery_id` turned firing."""
    rows = await conn.execute(
        text(
            "SELECT fingerprint, starts_at FROM alerts WHERE incident_id = :incident AND firing_delivery_id = :id"
        ),
        {"incident": incident_id, "id": delivery_id},
    )
    return {(row.fingerprint, row.starts_at) for row in rows}


async def all_resolved(conn: AsyncConnection, incident_id: int) -> bool:
    firing = await conn.execute(
        text("SELECT count(*) FROM alerts WHERE incident_id = :id AND status = 'firing'"), {"id": incident_id}
    )
    return int(firing.scalar_one()) == 0


async def add_event(conn: AsyncConnection, incident_id: int, kind: str, message: Text) -> None:
    """One line of the incident's timeline; a message is kept as such, to be said in the reader's language."""
    await conn.execute(
        text("INSERT INTO events (incident_id, at, kind, message) VALUES (:id, :at, :kind, :message)"),
        {"id": incident_id, "at": time.time(), "kind": kind, "message": to_column(message)},
    )


async def save_triage(conn: AsyncConnection, delivery_id: int, triage: Triage) -> None:
    """One triage per delivery: a re-run after a crash replaces the earlier, unfinished attempt's record."""
    params = {
        "incident": triage.correlation.incident.id,
        "delivery": delivery_id,
        "runbook": dumps(triage.runbook),
        "evidence": dumps(triage.evidence),
        "diagnosis": dumps(triage.diagnosis),
        "proposals": dumps(triage.proposals),
        "errors": dumps(triage.errors),
        "now": time.time(),
    }
    await conn.execute(
        text(
            "INSERT INTO triages (incident_id, delivery_id, runbook, evidence, diagnosis, proposals, errors,"
            " created_at) VALUES (:incident, :delivery, :runbook, :evidence, :diagnosis, :proposals, :errors, :now)"
            " ON CONFLICT (delivery_id) DO UPDATE SET runbook = excluded.runbook, evidence = excluded.evidence,"
            " diagnosis = excluded.diagnosis, proposals = excluded.proposals, errors = excluded.errors,"
            " created_at = excluded.created_at"
        ),
        params,
    )


async def list_page(
    conn: AsyncConnection, status: str | None, limit: int, before_id: int | None
) -> list[dict[str, Any]]:
    """Newest first; `before_id` pages back through older incidents."""
    conditions = ["1 = 1"]
    if status is not None:
        conditions.append("i.status = :status")
    if before_id is not None:
        conditions.append("i.id < :before")
    rows = await conn.execute(
        text(
            "SELECT i.*, (SELECT count(*) FROM alerts a WHERE a.incident_id = i.id) AS alert_count FROM incidents i"
            f" WHERE {' AND '.join(conditions)} ORDER BY i.id DESC LIMIT :limit"
        ),
        {"status": status, "before": before_id, "limit": limit},
    )
    return [_summary(row._mapping) for row in rows]


async def detail(conn: AsyncConnection, incident_id: int) -> dict[str, Any] | None:
    """The incident with its alerts, triages (newest first), notifications and timeline, as plain data."""
    row = (
        await conn.execute(text("SELECT * FROM incidents WHERE id = :id"), {"id": incident_id})
    ).one_or_none()
    if row is None:
        return None
    result = _summary(row._mapping)
    params = {"id": incident_id}
    alerts = await conn.execute(text("SELECT * FROM alerts WHERE incident_id = :id ORDER BY id"), params)
    result["alerts"] = [_alert(alert._mapping) for alert in alerts]
    result["alert_count"] = len(result["alerts"])
    triages = await conn.execute(
        text("SELECT * FROM triages WHERE incident_id = :id ORDER BY id DESC"), params
    )
    result["triages"] = [_triage(triage._mapping) for triage in triages]
    notes = await conn.execute(
        text("SELECT * FROM notifications WHERE incident_id = :id ORDER BY id"), params
    )
    result["notifications"] = [_notification(note._mapping) for note in notes]
    events = await conn.execute(text("SELECT * FROM events WHERE incident_id = :id ORDER BY id"), params)
    result["timeline"] = [
        {"at": _iso(event.at), "kind": event.kind, "message": from_column(event.message)} for event in events
    ]
    return result


async def alerts_of(conn: AsyncConnection, incident_id: int) -> list[dict[str, Any]]:
    """The incident's alerts as plain data, without the rest of `detail` (what a verification looks at)."""
    rows = await conn.execute(
        text("SELECT * FROM alerts WHERE incident_id = :id ORDER BY id"), {"id": incident_id}
    )
    return [_alert(row._mapping) for row in rows]


async def count_by_status(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(text("SELECT status, count(*) AS n FROM incidents GROUP BY status"))
    return {row.status: int(row.n) for row in rows}


def _incident(row: RowMapping) -> Incident:
    return Incident(
        id=row["id"],
        group_key=row["group_key"],
        status=row["status"],
        title=row["title"],
        severity=row["severity"],
        labels=loads(row["labels"]),
        opened_at=from_epoch(row["opened_at"]),  # type: ignore[arg-type]
        updated_at=from_epoch(row["updated_at"]),  # type: ignore[arg-type]
        resolved_at=from_epoch(row["resolved_at"]),
    )


def _summary(row: RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": row["status"],
        "title": row["title"],
        "severity": row["severity"],
        "group_key": row["group_key"],
        "labels": loads(row["labels"]),
        "opened_at": _iso(row["opened_at"]),
        "updated_at": _iso(row["updated_at"]),
        "resolved_at": _iso(row["resolved_at"]),
        "last_received_at": _iso(row["last_received_at"]),
        "repeats": row["repeats"],
        "alert_count": row.get("alert_count", 0),
    }


def _alert(row: RowMapping) -> dict[str, Any]:
    return {
        "fingerprint": row["fingerprint"],
        "name": row["name"],
        "status": row["status"],
        "labels": loads(row["labels"]),
        "annotations": loads(row["annotations"]),
        "starts_at": _iso(row["starts_at"]),
        "ends_at": _iso(row["ends_at"]),
        "generator_url": row["generator_url"],
    }


def _triage(row: RowMapping) -> dict[str, Any]:
    documents = ("runbook", "evidence", "diagnosis", "proposals", "errors")
    return {"created_at": _iso(row["created_at"]), **{name: loads(row[name]) for name in documents}}


def _notification(row: RowMapping) -> dict[str, Any]:
    return {
        "channel": row["channel"],
        "purpose": row["purpose"],
        "state": row["state"],
        "attempts": row["attempts"],
        "error": row["error"],
        "created_at": _iso(row["created_at"]),
        "sent_at": _iso(row["sent_at"]),
        "body": row["body"],
    }


def _iso(seconds: float | None) -> str | None:
    moment = from_epoch(seconds)
    return None if moment is None else moment.isoformat()


def _labelled(stored: dict[int, list[str]], where: tuple[str, str]) -> list[int]:
    """The incidents, in order, one of whose alerts' labels (JSON as `codec.dumps` writes it) has `where`; only the
    labels whose text holds the pair as written are decoded to make sure (most of a scan's hold other values)."""
    name, value = where
    written = f"{dumps(name)}:{dumps(value)}"
    return [
        key
        for key, texts in stored.items()
        if any(written in text and loads(text).get(name) == value for text in texts)
    ]


async def past(
    conn: AsyncConnection,
    name: str,
    exclude: int,
    where: tuple[str, str] | None,
    limit: int,
    scan: int = 200,
) -> list[dict[str, Any]]:
    """Up to `limit` incidents before `exclude` with an alert called `name` whose labels include `where` (any
    labels when None), newest first: their alerts' labels, status, times and latest diagnosis. At most `scan`
    alerts are looked at; only the incidents returned have their diagnosis read."""
    alerts = await conn.execute(
        text(
            "SELECT incident_id, labels FROM alerts WHERE name = :name AND incident_id < :exclude"
            " ORDER BY incident_id DESC LIMIT :scan"
        ),
        {"name": name, "exclude": exclude, "scan": scan},
    )
    stored: dict[int, list[str]] = {}
    for row in alerts:
        stored.setdefault(row.incident_id, []).append(row.labels)
    chosen = (list(stored) if where is None else _labelled(stored, where))[:limit]
    if not chosen:
        return []
    labels = {key: [loads(text) for text in stored[key]] for key in chosen}
    rows = await conn.execute(
        text(
            "SELECT i.id, i.status, i.opened_at, i.resolved_at, (SELECT t.diagnosis FROM triages t"
            " WHERE t.incident_id = i.id ORDER BY t.id DESC LIMIT 1) AS diagnosis FROM incidents i"
            f" WHERE i.id IN ({', '.join(str(int(key)) for key in chosen)}) ORDER BY i.id DESC"
        )
    )
    return [
        {
            "id": row.id,
            "status": row.status,
            "opened_at": from_epoch(row.opened_at),
            "resolved_at": from_epoch(row.resolved_at),
            "diagnosis": loads(row.diagnosis),
            "alert_labels": labels[row.id],
        }
        for row in rows
    ]


async def latest_triage(conn: AsyncConnection, incident_id: int) -> Triage | None:
    """The incident's newest triage as models, to render it again (a card edited after a click or an action)."""
    incident = await get(conn, incident_id)
    found = await detail(conn, incident_id)
    if incident is None or found is None or not found["triages"]:
        return None
    return stored_triage(found["triages"][0], incident, found["alerts"])


def stored_triage(
    document: Mapping[str, Any], incident: Incident, alerts: Sequence[Mapping[str, Any]]
) -> Triage:
    """A triage as `save_triage` stored it, read back into the models."""
    evidence = [
        dict(item, series=[_finite(s) for s in item.get("series", [])]) for item in document["evidence"]
    ]
    correlation = Correlation(incident, "updated", _adapter(tuple[Alert, ...]).validate_python(alerts))
    return Triage(
        correlation,
        _adapter(RunbookMatch).validate_python(document["runbook"]),
        _adapter(tuple[Evidence, ...]).validate_python(evidence),
        _adapter(Diagnosis).validate_python(document["diagnosis"]),
        errors=_adapter(tuple[StageError, ...]).validate_python(document.get("errors") or []),
    )


def _finite(series: Mapping[str, Any]) -> dict[str, Any]:
    """The store writes a NaN (a series with no finite sample) as null; the model holds it as NaN."""
    return {**series, **{k: math.nan for k in ("min", "max", "mean", "last") if series.get(k) is None}}


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)
