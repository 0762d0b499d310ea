"""A notification of thousands of alerts: accepted, correlated in chunks without shutting intake out, and
finished by a re-run after an interruption as if it had never been interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.models import Correlation
from aiops.payload import WebhookPayload
from aiops.pipeline.correlate import CHUNK, correlate
from aiops.store import deliveries
from tests.conftest import DATA
from tests.support.app import AUTH, row_counts

FIRING: dict[str, Any] = json.loads((DATA / "firing.json").read_text())
GROUP = '{}:{alertname="TargetDown"}'


def notification(count: int, status: str = "firing", first: int = 0) -> str:
    """One group of `count` alerts with compact labels, as a storm of one rule on many targets looks."""
    alerts = [
        {
            "status": status,
            "labels": {"alertname": "TargetDown", "instance": f"h{n}:9100"},
            "annotations": {},
            "startsAt": "2026-11-24T03:02:11Z",
            "endsAt": "2026-11-24T04:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": f"{n:016x}",
        }
        for n in range(first, first + count)
    ]
    common = {"alertname": "TargetDown"}
    body = {**FIRING, "groupKey": GROUP, "status": status, "alerts": alerts, "commonLabels": common}
    return json.dumps({**body, "groupLabels": common, "commonAnnotations": {}}, separators=(",", ":"))


def small(n: int) -> bytes:
    return json.dumps({**FIRING, "groupKey": f"small-{n}"}).encode()


async def store(engine: AsyncEngine, body: str) -> int:
    async with engine.begin() as conn:
        group = WebhookPayload.model_validate_json(body).to_group()
        return (await deliveries.record(conn, group, body)).delivery_id


async def interrupted_then_run_again(engine: AsyncEngine, delivery_id: int) -> Correlation:
    """Cancel the delivery's correlation once its first chunk is committed, check that it stopped part-way, and
    run it again."""
    running = asyncio.create_task(correlate(engine, delivery_id))
    while await _incident_of(engine, delivery_id) is None:
        continue  # each look at the store lets the correlation run on
    assert not running.done()
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    async with engine.connect() as conn:
        change = await conn.execute(text("SELECT change FROM deliveries WHERE id = :id"), {"id": delivery_id})
        assert change.scalar_one() is None
    return await correlate(engine, delivery_id)


async def _incident_of(engine: AsyncEngine, delivery_id: int) -> int | None:
    async with engine.connect() as conn:
        row = await conn.execute(
            text("SELECT incident_id FROM deliveries WHERE id = :id"), {"id": delivery_id}
        )
        found: int | None = row.scalar_one()
        return found


async def events(engine: AsyncEngine, kind: str) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(text("SELECT count(*) FROM events WHERE kind = :kind"), {"kind": kind})
        return int(found.scalar_one())


async def alerts_by_status(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT status, count(*) AS n FROM alerts GROUP BY status"))
        return {row.status: int(row.n) for row in rows}


async def test_ten_thousand_alerts_are_accepted_and_become_one_incident(
    app_for: Any, engine: AsyncEngine
) -> None:
    body = notification(10_000).encode()
    assert len(body) < 5 * 1024 * 1024  # webhook.max_body
    async with app_for() as (client, services):
        answer = await client.post("/webhook/alertmanager", content=body, headers=AUTH)
        assert answer.status_code == 200, answer.text
        correlation = await correlate(services.engine, int(answer.json()["delivery"]))
    assert correlation.change == "opened" and len(correlation.new_firing) == 10_000
    assert await row_counts(engine) == {"deliveries": 1, "jobs": 1, "incidents": 1, "alerts": 10_000}
    assert await events(engine, "opened") == 1


async def test_small_deliveries_are_stored_while_a_big_one_is_correlated(
    app_for: Any, engine: AsyncEngine
) -> None:
    big = await store(engine, notification(10_000))
    answers, before_the_end = [], 0
    async with app_for() as (client, _):
        correlating = asyncio.create_task(correlate(engine, big))
        while not correlating.done() and len(answers) < 500:
            answers.append(
                await client.post("/webhook/alertmanager", content=small(len(answers)), headers=AUTH)
            )
            before_the_end += not correlating.done()
        correlation = await correlating
    assert before_the_end > 0
    assert [answer.status_code for answer in answers] == [200] * len(answers)
    counts = await row_counts(engine)
    assert counts["deliveries"] == counts["jobs"] == 1 + len(answers)
    assert correlation.change == "opened" and counts["alerts"] == 10_000


async def test_an_interrupted_correlation_opens_one_incident_with_every_alert(engine: AsyncEngine) -> None:
    delivery = await store(engine, notification(10_000))
    correlation = await interrupted_then_run_again(engine, delivery)
    assert correlation.change == "opened" and len(correlation.new_firing) == 10_000
    assert (await row_counts(engine))["incidents"] == 1
    assert await alerts_by_status(engine) == {"firing": 10_000}
    assert await events(engine, "opened") == 1
    again = await correlate(engine, delivery)
    assert (again.change, again.incident.id) == ("opened", correlation.incident.id)


async def test_an_interrupted_correlation_reports_the_alerts_it_newly_fired(engine: AsyncEngine) -> None:
    known = 2 * CHUNK  # the first chunk of the next delivery holds only alerts the incident knows
    opened = await correlate(engine, await store(engine, notification(known)))
    grown = await interrupted_then_run_again(engine, await store(engine, notification(known + 3 * CHUNK)))
    assert grown.change == "updated" and grown.incident.id == opened.incident.id
    assert [alert.fingerprint for alert in grown.new_firing] == [f"{n:016x}" for n in range(known, 5 * CHUNK)]
    assert await alerts_by_status(engine) == {"firing": 5 * CHUNK}
    assert await events(engine, "alerts_added") == 1


async def test_an_interrupted_resolution_resolves_the_incident(engine: AsyncEngine) -> None:
    count = 4 * CHUNK
    opened = await correlate(engine, await store(engine, notification(count)))
    resolved = await interrupted_then_run_again(engine, await store(engine, notification(count, "resolved")))
    assert resolved.change == "resolved" and resolved.incident.id == opened.incident.id
    assert resolved.incident.status == "resolved" and resolved.new_firing == ()
    assert await alerts_by_status(engine) == {"resolved": count}
    assert await events(engine, "resolved") == 1
