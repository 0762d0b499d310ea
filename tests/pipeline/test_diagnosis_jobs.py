"""Diagnosis as a job of its own: announcements never wait for another incident's model call, diagnoses run at
most `llm.concurrency` at once (most severe first), and a rate-limited provider slows every diagnosis together.

The real worker pool runs the jobs; the model is the fake MiniMax on loopback behind the real openai SDK.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.service import Services
from tests.conftest import DATA
from tests.fakes.minimax import FakeMiniMax, Reply
from tests.llm.conftest import GOOD, llm
from tests.support.app import AUTH, running, settings_for

FAST_QUEUE = {"poll_interval": "50ms"}


def group(number: int, *, alertname: str = "HostOutOfDiskSpace", severity: str = "warning") -> bytes:
    """firing.json as another group: its own key, fingerprint, instance and (by default) its own job, so that
    no two groups share a storm signature."""
    payload = json.loads((DATA / "firing.json").read_text())
    payload["groupKey"] += f"/g{number}"
    labels = {
        "alertname": alertname,
        "severity": severity,
        "instance": f"web-{number}:9100",
        "job": f"j{number}",
    }
    payload["commonLabels"] = labels
    payload["commonAnnotations"] = {}
    for alert in payload["alerts"]:
        alert["fingerprint"] = f"{number:016x}"
        alert["labels"].update(labels)
    return json.dumps(payload).encode()


async def until(check: Callable[[], Any], within: float = 60.0) -> Any:
    """Poll an async check until it returns something truthy; the deadline only guards against a hang."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not come true in time")


async def notifications(engine: AsyncEngine) -> list[tuple[int, str, float]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT incident_id, purpose, created_at FROM notifications ORDER BY id")
        )
        return [(row.incident_id, row.purpose, row.created_at) for row in rows]


async def diagnosed_at(engine: AsyncEngine) -> dict[int, float]:
    """When each incident's model diagnosis landed (its "diagnosed" event)."""
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT incident_id, at FROM events WHERE kind = 'diagnosed'"))
        return {row.incident_id: row.at for row in rows}


async def post_all(client: httpx.AsyncClient, bodies: list[bytes]) -> None:
    for body in bodies:
        answer = await client.post("/webhook/alertmanager", content=body, headers=AUTH)
        assert answer.status_code == 200, answer.text


def app(database_url: str, engine: AsyncEngine, fake: FakeMiniMax, **llm_: Any) -> Any:
    settings = settings_for(
        database_url,
        llm=llm(fake, call_timeout=30, **llm_),
        server={"language": "en"},
        queue=FAST_QUEUE,
    )
    return running(settings, engine, workers=True)


def good(request: dict[str, Any]) -> Reply:
    return Reply(content=json.dumps(GOOD))


async def test_every_incident_is_announced_before_the_slow_model_gets_through_them(
    database_url: str, engine: AsyncEngine, fake_minimax: FakeMiniMax
) -> None:
    fake_minimax.responder, fake_minimax.delay = good, 0.6
    async with app(database_url, engine, fake_minimax, concurrency=3, notify_within=0.1) as (client, _):
        await post_all(client, [group(n) for n in range(1, 13)])
        landed = await until(lambda: _all(diagnosed_at(engine), 12))
    sent = await notifications(engine)
    opened = {incident: at for incident, purpose, at in sent if purpose == "opened"}
    assert len(opened) == 12  # each incident announced once …
    # announced by the timer and edited when the diagnosis landed, or announced with it when it came first
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT incident_id, announced_by FROM triages"))
        by_timer = sorted(row.incident_id for row in rows if row.announced_by == "announce")
    assert sorted(incident for incident, purpose, _ in sent if purpose == "updated") == by_timer
    # … and every announcement went out before the model was through the incidents (12 calls, 3 at a time)
    assert max(opened.values()) < max(landed.values())
    assert fake_minimax.peak_in_flight == 3  # the limit was used and held
    assert fake_minimax.calls == 12


async def _all(found: Any, count: int) -> Any:
    values = await found
    return values if len(values) >= count else None


async def test_the_most_severe_waiting_diagnosis_goes_first(
    database_url: str, engine: AsyncEngine, fake_minimax: FakeMiniMax
) -> None:
    release = threading.Event()
    order: list[str] = []

    def held(request: dict[str, Any]) -> Reply:
        prompt = json.dumps(request["messages"])
        order.append(next(name for name in ("Warn", "Crit") if f"{name}Alert" in prompt))
        if len(order) == 1:
            release.wait(20)  # the first call holds the only diagnosis worker while the others queue
        return Reply(content=json.dumps(GOOD))

    fake_minimax.responder = held
    async with app(database_url, engine, fake_minimax, concurrency=1, notify_within=0.1) as (client, _):
        await post_all(client, [group(1, alertname="WarnAlert")])
        await until(lambda: _value(lambda: fake_minimax.calls))
        await post_all(client, [group(n, alertname="WarnAlert") for n in (2, 3)])
        await post_all(client, [group(4, alertname="CritAlert", severity="critical")])
        await until(lambda: _all(_pending_diagnoses(engine), 3))
        release.set()
        await until(lambda: _all(diagnosed_at(engine), 4))
    assert order == ["Warn", "Crit", "Warn", "Warn"]


async def _value(read: Callable[[], Any]) -> Any:
    return read()


async def _pending_diagnoses(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT id FROM jobs WHERE kind = 'diagnose' AND state = 'pending'"))
        return [row.id for row in rows]


async def test_a_rate_limited_provider_pauses_every_diagnosis_together_and_they_recover(
    database_url: str, engine: AsyncEngine, fake_minimax: FakeMiniMax
) -> None:
    stamps: list[tuple[float, str]] = []
    lock = threading.Lock()

    def limited(request: dict[str, Any]) -> Reply:
        with lock:
            throttled = sum(1 for _, kind in stamps if kind == "1002") < 4
            stamps.append((time.monotonic(), "1002" if throttled else "ok"))
        if throttled:
            return Reply(http_status=429, base_resp=(1002, "rate limit exceeded(RPM)"), retry_after=1)
        return Reply(content=json.dumps(GOOD))

    fake_minimax.responder = limited
    async with app(database_url, engine, fake_minimax, concurrency=4, notify_within=0.1) as (
        client,
        services,
    ):
        await post_all(client, [group(n) for n in range(1, 5)])
        await until(lambda: _all(diagnosed_at(engine), 4))
        metrics = services.metrics.exposition().decode()
    first_throttle = min(at for at, kind in stamps if kind == "1002")
    first_success = min(at for at, kind in stamps if kind == "ok")
    # One shared pause of the Retry-After second: nobody hammered on while it lasted.
    assert first_success - first_throttle >= 0.9
    assert "aiops_llm_throttled_pause_seconds_count" in metrics
    assert _sample(metrics, "aiops_llm_throttled_pause_seconds_count") >= 1
    assert _sample(metrics, 'aiops_diagnoses_total{source="llm"}') == 4


def _sample(metrics: str, name: str) -> float:
    line = next(line for line in metrics.splitlines() if line.startswith(name + " "))
    return float(line.split()[-1])


async def test_a_lone_incident_with_a_prompt_model_gets_one_card_with_its_diagnosis(
    database_url: str, engine: AsyncEngine, fake_minimax: FakeMiniMax
) -> None:
    fake_minimax.responder = good
    async with app(database_url, engine, fake_minimax, notify_within=30) as (client, services):
        await post_all(client, [(DATA / "firing.json").read_bytes()])
        await until(lambda: _all(diagnosed_at(engine), 1))
        await until(lambda: _all(notifications(engine), 1))
        await _finish_timer(services)
    assert [purpose for _, purpose, _ in await notifications(engine)] == ["opened"]
    async with engine.connect() as conn:
        who = (await conn.execute(text("SELECT announced_by FROM triages"))).scalar_one()
    assert who == "diagnose"


async def _finish_timer(services: Services) -> None:
    """Run the announcement timer now, as its worker would when it comes due: it must find nothing to do."""
    async with services.engine.connect() as conn:
        delivery = (await conn.execute(text("SELECT delivery_id FROM triages"))).scalar_one()
    assert await services.pipeline.announce(delivery, "announce") is False
