"""Correlate: one incident per alert group, updated by new alerts, resolved when all of them resolve."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.payload import WebhookPayload
from aiops.pipeline.correlate import correlate
from aiops.store import deliveries
from tests.conftest import DATA

FIRING: dict[str, Any] = json.loads((DATA / "firing.json").read_text())


def alert(fingerprint: str, status: str = "firing", starts: str = "2026-11-24T03:02:11Z") -> dict[str, Any]:
    ends = "2026-11-24T04:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"
    labels = {"alertname": "HostHighCpuLoad", "instance": f"{fingerprint}:9100", "severity": "critical"}
    return {
        "status": status,
        "labels": labels,
        "annotations": {},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "",
        "fingerprint": fingerprint,
    }


async def deliver(
    engine: AsyncEngine, *alerts: dict[str, Any], status: str = "firing", key: str = "g1"
) -> int:
    body = {
        **FIRING,
        "groupKey": key,
        "status": status,
        "alerts": list(alerts),
        "commonAnnotations": {},
        "commonLabels": {"alertname": "HostHighCpuLoad"},
    }
    text = json.dumps(body)
    async with engine.begin() as conn:
        receipt = await deliveries.record(conn, WebhookPayload.model_validate_json(text).to_group(), text)
    return receipt.delivery_id


async def test_incident_lifecycle(engine: AsyncEngine) -> None:
    opened = await correlate(engine, await deliver(engine, alert("a")))
    assert opened.change == "opened" and opened.incident.status == "open"
    assert opened.incident.severity == "critical" and opened.incident.title == "HostHighCpuLoad"

    grown = await correlate(engine, await deliver(engine, alert("a"), alert("b")))
    assert grown.change == "updated" and grown.incident.id == opened.incident.id
    assert [a.fingerprint for a in grown.new_firing] == ["b"]

    partly = await correlate(engine, await deliver(engine, alert("a", "resolved"), alert("b")))
    assert partly.change == "unchanged" and partly.incident.status == "open"

    done = await correlate(
        engine, await deliver(engine, alert("a", "resolved"), alert("b", "resolved"), status="resolved")
    )
    assert done.change == "resolved" and done.incident.status == "resolved"
    assert done.incident.resolved_at is not None

    again = await correlate(engine, await deliver(engine, alert("a", starts="2026-11-24T05:00:00Z")))
    assert again.change == "opened" and again.incident.id != opened.incident.id


async def test_correlating_twice_applies_once(engine: AsyncEngine) -> None:
    delivery = await deliver(engine, alert("a"))
    first = await correlate(engine, delivery)
    second = await correlate(engine, delivery)
    assert (first.change, second.change) == ("opened", "opened")
    assert first.incident.id == second.incident.id
    # Only the second says so: the triage looks for what an earlier run stored only then.
    assert (first.again, second.again) == (False, True)


async def test_groups_are_separate_incidents(engine: AsyncEngine) -> None:
    one = await correlate(engine, await deliver(engine, alert("a"), key="g1"))
    two = await correlate(engine, await deliver(engine, alert("a"), key="g2"))
    assert one.incident.id != two.incident.id
