"""The outbox with a channel that records what it is asked to do, on a simulated clock.

The platforms' own behaviour (signatures, error codes, their rate limits) is tested against their fakes in
tests/channels/; here the subject is the outbox: limits kept, edits in place, retries, digests, nothing lost.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.actions.approvals import Actor
from aiops.channels import Announcement, ChannelError, Digest, RateLimit
from aiops.channels.routing import Routing
from aiops.metrics import Metrics
from aiops.pipeline.outbox import Outbox
from aiops.queue import Deferred
from aiops.service import Services
from aiops.store import jobs
from tests.conftest import DATA
from tests.support.app import AUTH


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    """A chat channel that records sends and edits; `failures` scripts errors for the next calls."""

    name: str = "chat"
    limits: RateLimit = field(default_factory=lambda: RateLimit(per_minute=20))
    immediate: bool = False
    results_on_card: bool = False
    routing: Routing | None = None
    sent: list[str] = field(default_factory=list)
    edits: list[tuple[str, str]] = field(default_factory=list)
    failures: list[ChannelError] = field(default_factory=list)
    clock: Clock | None = None
    sent_at: list[float] = field(default_factory=list)

    def render(self, announcement: Announcement) -> str:
        return f"{announcement.purpose} #{announcement.incident.id} {announcement.incident.title}"

    def render_digest(self, digest: Digest) -> str:
        return "digest " + " ".join(str(entry.incident_id) for entry in digest.entries)

    async def send(self, body: str) -> str | None:
        self._fail()
        self.sent.append(body)
        if self.clock is not None:
            self.sent_at.append(self.clock.now)
        return f"m-{len(self.sent)}"

    async def update(self, handle: str, body: str) -> None:
        self._fail()
        self.edits.append((handle, body))

    def _fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)


async def post(client: Any, number: int, status: str = "firing") -> None:
    payload = json.loads((DATA / f"{status}.json").read_text())
    payload["groupKey"] += f"-{number}"
    for alert in payload["alerts"]:
        alert["fingerprint"] = f"{number:016x}"
    answer = await client.post("/webhook/alertmanager", content=json.dumps(payload), headers=AUTH)
    assert answer.status_code == 200


async def drain(
    services: Services, outbox: Outbox, clock: Clock, step: float = 1.0, limit: int = 10_000
) -> int:
    """Work every due job; a deferred delivery or a retry waits on the simulated clock. Returns the jobs done."""
    done = 0
    for _ in range(limit):
        async with services.engine.begin() as conn:
            job = await jobs.claim(conn, "test", 60)
        if job is None:
            return done
        try:
            if job.kind == "deliver":
                await outbox.handle(job)
            else:
                await services.handlers[job.kind](job)
        except (Deferred, ChannelError) as waited:
            clock.now += getattr(waited, "delay", step)
            async with services.engine.begin() as conn:
                await jobs.defer(conn, job.id, "test", 0)
            continue
        async with services.engine.begin() as conn:
            await jobs.finish(conn, job.id, "test")
        done += 1
    raise AssertionError("the outbox did not drain")


async def states(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT state, count(*) AS n FROM notifications WHERE channel = 'chat' GROUP BY state")
        )
        return {row.state: row.n for row in rows}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@asynccontextmanager
async def chat(
    app_for: Any, engine: AsyncEngine, recorder: Recorder, clock: Clock
) -> AsyncIterator[tuple[Any, Services, Outbox]]:
    """The app announcing on `recorder` only, and an outbox on the simulated clock. Copies of one alert would
    make a storm, with a storm card of its own: these tests are about single messages, so storms are off."""
    async with app_for(storm={"enabled": False}) as (client, services):
        services.pipeline.stages = dataclasses.replace(services.pipeline.stages, channels=[recorder])
        yield client, services, Outbox(engine, {"chat": recorder}, Metrics(), "http://aiops", clock)


async def test_a_resolved_incident_edits_the_message_it_was_announced_on(
    app_for: Any, engine: AsyncEngine, recorder: Recorder
) -> None:
    clock = Clock()
    async with chat(app_for, engine, recorder, clock) as (client, services, outbox):
        await post(client, 1)
        await drain(services, outbox, clock)
        await post(client, 1, "resolved")
        await drain(services, outbox, clock)
    assert recorder.sent == ["opened #1 Host out of disk space (instance web-1:9100)"]
    assert recorder.edits == [("m-1", "resolved #1 Host out of disk space (instance web-1:9100)")]


async def test_a_storm_stays_under_the_limit_and_every_incident_is_announced(
    app_for: Any, engine: AsyncEngine, recorder: Recorder
) -> None:
    clock = Clock()
    async with chat(app_for, engine, recorder, clock) as (client, services, outbox):
        for number in range(1, 101):
            await post(client, number)
        await drain(services, outbox, clock)
    announced = {int(word) for body in recorder.sent for word in body.split() if word.isdigit()}
    announced |= {int(body.split("#")[1].split()[0]) for body in recorder.sent if body.startswith("opened")}
    assert announced >= set(range(1, 101))
    assert len(recorder.sent) <= 20
    assert (await states(engine)).get("pending", 0) == 0


async def test_the_rate_limit_is_kept_on_the_clock(app_for: Any, engine: AsyncEngine) -> None:
    clock = Clock()
    recorder = Recorder(limits=RateLimit(per_minute=3), clock=clock)  # a digest needs > 2 waiting
    async with chat(app_for, engine, recorder, clock) as (client, services, outbox):
        for number in range(1, 3):
            await post(client, number)
            await drain(services, outbox, clock)
        for number in range(3, 5):
            await post(client, number)
            await drain(services, outbox, clock)
    assert len(recorder.sent_at) == 4
    times = recorder.sent_at
    assert all(later - earlier >= 60 for earlier, later in zip(times, times[3:], strict=False))


async def test_an_outage_delays_delivery_and_each_message_goes_out_once(
    app_for: Any, engine: AsyncEngine, recorder: Recorder
) -> None:
    clock = Clock()
    recorder.failures = [ChannelError("HTTP 503", retryable=True) for _ in range(10)]
    async with chat(app_for, engine, recorder, clock) as (client, services, outbox):
        await post(client, 1)
        await drain(services, outbox, clock, step=30)
    assert recorder.failures == []
    assert recorder.sent == ["opened #1 Host out of disk space (instance web-1:9100)"]
    assert await states(engine) == {"sent": 1}


async def test_a_permanent_error_is_recorded_with_the_platforms_words(
    app_for: Any, engine: AsyncEngine, recorder: Recorder
) -> None:
    clock = Clock()
    recorder.failures = [ChannelError("errcode 460101: message too large", retryable=False)]
    async with chat(app_for, engine, recorder, clock) as (client, services, outbox):
        await post(client, 1)
        await drain(services, outbox, clock)
        async with engine.connect() as conn:
            error = (await conn.execute(text("SELECT error FROM notifications"))).scalar_one()
    assert error == "errcode 460101: message too large"
    assert await states(engine) == {"failed": 1}


async def test_an_actions_result_edits_the_card_and_follows_as_a_message(
    app_for: Any, engine: AsyncEngine, recorder: Recorder, tmp_path: Any
) -> None:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "HostOutOfDiskSpace.md").write_text(
        "---\nalerts: [HostOutOfDiskSpace]\nactions: [acknowledge]\n---\n"
    )
    clock = Clock()
    async with app_for(runbooks={"dir": str(folder)}, remediation={"approvers": {"cli": ["oncall"]}}) as (
        client,
        services,
    ):
        services.pipeline.stages = dataclasses.replace(services.pipeline.stages, channels=[recorder])
        outbox = Outbox(engine, {"chat": recorder}, Metrics(), "http://aiops", clock)
        await post(client, 1)
        await drain(services, outbox, clock)
        decision = await services.approvals.decide(1, True, Actor("cli", "oncall"))
        await drain(services, outbox, clock)
    assert decision.outcome == "approved"
    assert recorder.sent == [
        "opened #1 Host out of disk space (instance web-1:9100)",
        "action #1 Host out of disk space (instance web-1:9100)",
    ]
    assert recorder.edits == [("m-1", "updated #1 Host out of disk space (instance web-1:9100)")]
