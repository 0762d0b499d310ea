"""Annotations in Grafana: one per event, written by the queue's workers against a fake Grafana on loopback,
retried through outages without holding back triage, given up on refusals with an error that says what to fix."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.actions.approvals import Actor
from aiops.grafana.annotations import ANNOTATE
from aiops.grafana.dashboards import epoch_ms
from aiops.queue import WorkerPool
from aiops.service import Services
from aiops.store import incidents
from tests.conftest import DATA
from tests.fakes.grafana import TOKEN, FakeGrafana
from tests.support.app import AUTH
from tests.support.sshd import running_sshd

pytestmark = pytest.mark.timeout(90)

# Workers that look often and back off briefly, so that retries happen within a test.
QUEUE = {"poll_interval": "20ms", "max_backoff": "50ms", "max_attempts": 1000}
TAGS = ["alertname:HostOutOfDiskSpace", "instance:web-1:9100", "severity:warning"]


def grafana(fake: FakeGrafana, **settings: Any) -> dict[str, Any]:
    return {"url": fake.url, "token": TOKEN, **settings}


@asynccontextmanager
async def working(services: Services) -> AsyncIterator[None]:
    """The service's worker pool, as `aiops serve` runs it."""
    services.pool = WorkerPool(services.engine, services.settings.queue, services.handlers)
    services.pool.start()
    try:
        yield
    finally:
        await services.pool.stop()
        services.pool = None


async def post(client: Any, name: str = "firing") -> None:
    body = (DATA / f"{name}.json").read_bytes()
    answer = await client.post("/webhook/alertmanager", content=body, headers=AUTH)
    assert answer.status_code == 200


async def until(check: Callable[[], bool | Awaitable[bool]], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not so within {seconds:g}s")
        await asyncio.sleep(0.02)


async def scalar(engine: AsyncEngine, query: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(query))).scalar()


async def idle(engine: AsyncEngine) -> bool:
    """Nothing left to do: every job done or failed for good."""
    return await scalar(engine, "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')") == 0


async def announced(engine: AsyncEngine) -> bool:
    found = await scalar(
        engine, "SELECT count(*) FROM notifications WHERE channel = 'console' AND state = 'sent'"
    )
    return bool(found)


def counted(services: Services, outcome: str) -> float:
    value = services.metrics.registry.get_sample_value("aiops_annotations_total", {"outcome": outcome})
    return value or 0.0


async def test_an_opened_incident_is_annotated_once_with_its_tags_and_time(
    app_for: Any, engine: AsyncEngine, fake_grafana: FakeGrafana
) -> None:
    async with app_for(grafana=grafana(fake_grafana), queue=QUEUE, server={"language": "en"}) as (
        client,
        services,
    ):
        async with working(services):
            await post(client)
            await until(lambda: idle(engine))
        async with engine.connect() as conn:
            incident = await incidents.get(conn, 1)
        written = counted(services, "written")
    assert incident is not None
    [annotation] = fake_grafana.annotations
    assert annotation["tags"] == ["aiops", "opened", "incident:1", *TAGS]
    assert annotation["time"] == annotation["timeEnd"] == epoch_ms(incident.opened_at)
    assert annotation["text"].startswith("Opened (warning): Host out of disk space (instance web-1:9100)")
    assert '<a href="http://127.0.0.1:18789/incidents/1">Incident #1</a>' in annotation["text"]
    assert fake_grafana.posts()[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert written == 1


async def test_a_resolved_incident_is_one_region_from_opened_to_resolved(
    app_for: Any, engine: AsyncEngine, fake_grafana: FakeGrafana
) -> None:
    async with app_for(grafana=grafana(fake_grafana), queue=QUEUE) as (client, services):
        async with working(services):
            await post(client)
            await until(lambda: idle(engine))
            await post(client, "resolved")
            await until(lambda: idle(engine))
        async with engine.connect() as conn:
            incident = await incidents.get(conn, 1)
    assert incident is not None and incident.resolved_at is not None
    opened, resolved = fake_grafana.annotations
    assert opened["tags"][1] == "opened" and resolved["tags"] == ["aiops", "resolved", "incident:1", *TAGS]
    assert resolved["time"] == epoch_ms(incident.opened_at)
    assert resolved["timeEnd"] == epoch_ms(incident.resolved_at) > resolved["time"]


async def test_an_executed_action_is_annotated_with_its_outcome(
    app_for: Any, engine: AsyncEngine, fake_grafana: FakeGrafana, tmp_path: Path
) -> None:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "HostOutOfDiskSpace.md").write_text(
        "---\nalerts: [HostOutOfDiskSpace]\nactions: [acknowledge]\n---\n"
    )
    async with (
        app_for(
            grafana=grafana(fake_grafana),
            queue=QUEUE,
            runbooks={"dir": str(folder)},
            remediation={"approvers": {"cli": ["oncall"]}},
        ) as (client, services),
        working(services),
    ):
        await post(client)
        await until(lambda: idle(engine))
        before = round(time.time() * 1000)
        decision = await services.approvals.decide(1, True, Actor("cli", "oncall"))
        await until(lambda: idle(engine))
        after = round(time.time() * 1000)
    assert decision.outcome == "approved"
    opened, executed = fake_grafana.annotations
    assert opened["tags"][1] == "opened"
    assert executed["tags"][:3] == ["aiops", "executed", "incident:1"]
    assert {"action:acknowledge", "outcome:succeeded", *TAGS} <= set(executed["tags"])
    assert before <= executed["time"] == executed["timeEnd"] <= after
    assert (
        "acknowledge" in executed["text"] and 'href="http://127.0.0.1:18789/incidents/1"' in executed["text"]
    )


async def test_an_outage_is_retried_until_one_annotation_is_written_and_triage_does_not_wait(
    app_for: Any, engine: AsyncEngine, fake_grafana: FakeGrafana
) -> None:
    fake_grafana.outage = True
    async with app_for(grafana=grafana(fake_grafana), queue=QUEUE) as (client, services):
        async with working(services):
            await post(client)
            await until(lambda: announced(engine))
            # The annotation has been tried and retried by now, and the incident was announced all the same.
            await until(lambda: len(fake_grafana.requests) >= 3)
            assert fake_grafana.annotations == []
            fake_grafana.outage = False
            await until(lambda: idle(engine))
        retries = counted(services, "retry")
    assert len(fake_grafana.annotations) == 1
    assert retries >= 2
    assert await scalar(engine, f"SELECT state FROM jobs WHERE kind = '{ANNOTATE}'") == "done"


async def test_an_answer_lost_after_grafana_stored_the_annotation_does_not_write_it_twice(
    app_for: Any, engine: AsyncEngine, fake_grafana: FakeGrafana
) -> None:
    fake_grafana.hold = 1.5  # the first POST is stored, then answered after the client has given up
    async with app_for(grafana=grafana(fake_grafana, timeout="300ms"), queue=QUEUE) as (client, services):
        async with working(services):
            await post(client)
            await until(lambda: idle(engine))
        already = counted(services, "already_written")
    assert len(fake_grafana.annotations) == 1
    assert [request.method for request in fake_grafana.requests] == ["POST", "GET"]
    assert already == 1


@pytest.mark.parametrize(
    ("refusal", "expected"),
    [
        ("token", ("grafana.token was refused (401: invalid API key)", "create a new service account token")),
        (
            "permission",
            ("grafana.token lacks a permission (403: You'll need", "Editor role, or annotations:create"),
        ),
    ],
)
async def test_a_refusal_is_not_retried_and_the_error_says_what_to_fix(
    app_for: Any,
    engine: AsyncEngine,
    fake_grafana: FakeGrafana,
    caplog: pytest.LogCaptureFixture,
    refusal: str,
    expected: tuple[str, str],
) -> None:
    token = "glsa_notTheRightToken_0123456789abcdef" if refusal == "token" else TOKEN
    fake_grafana.denied = refusal == "permission"
    settings = {"grafana": {"url": fake_grafana.url, "token": token}, "queue": QUEUE}
    with caplog.at_level(logging.INFO):
        async with app_for(**settings) as (client, services), working(services):
            await post(client)
            await until(lambda: idle(engine))
            await asyncio.sleep(0.2)  # time enough for a retry, were there one
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(fake_grafana.requests) == 1 and fake_grafana.annotations == []
    assert len(errors) == 1 and all(part in errors[0] for part in expected), errors
    assert token not in caplog.text
    assert await scalar(engine, f"SELECT state FROM jobs WHERE kind = '{ANNOTATE}'") == "done"


@pytest.mark.parametrize("setup", ["no grafana", "no token", "annotations off"])
async def test_without_annotations_grafana_is_never_called(
    app_for: Any, engine: AsyncEngine, fake_grafana: FakeGrafana, setup: str
) -> None:
    sections = {
        "no grafana": {},
        "no token": {"grafana": {"url": fake_grafana.url}},
        "annotations off": {"grafana": grafana(fake_grafana, annotations=False)},
    }[setup]
    async with app_for(queue=QUEUE, **sections) as (client, services), working(services):
        await post(client)
        await post(client, "resolved")
        await until(lambda: idle(engine))
    assert fake_grafana.requests == []
    assert await scalar(engine, f"SELECT count(*) FROM jobs WHERE kind = '{ANNOTATE}'") == 0
    assert await scalar(engine, "SELECT count(*) FROM incidents WHERE status = 'resolved'") == 1


async def test_a_broken_annotation_template_leaves_triage_alone(
    app_for: Any,
    engine: AsyncEngine,
    fake_grafana: FakeGrafana,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    overrides = tmp_path / "templates"
    (overrides / "grafana").mkdir(parents=True)
    (overrides / "grafana" / "annotation.html.j2").write_text("{{ no_such_value }}\n")
    settings = {"grafana": grafana(fake_grafana), "queue": QUEUE, "channels": {"templates": str(overrides)}}
    async with app_for(**settings) as (client, services), working(services):
        await post(client)
        await until(lambda: idle(engine))
    assert await announced(engine)
    assert fake_grafana.requests == []
    assert "the opened annotation of incident 1 was not written: 'no_such_value' is undefined" in caplog.text


async def test_a_verified_fix_is_annotated_with_what_the_verification_said(
    app_for: Any, engine: AsyncEngine, fake_grafana: FakeGrafana, tmp_path: Path
) -> None:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "HostOutOfDiskSpace.md").write_text("---\nalerts: [HostOutOfDiskSpace]\nactions: [tidy]\n---\n")
    (folder / "actions.yml").write_text(
        "tidy:\n  description: Tidy up\n  argv: ['true']\n  target: labels.instance\n  risk: high\n"
        "  timeout: 10s\n  verify: {window: 10m}\n"
    )
    (tmp_path / "sshd").mkdir()
    with running_sshd(tmp_path / "sshd") as sshd:
        async with (
            app_for(
                grafana=grafana(fake_grafana),
                queue=QUEUE,
                runbooks={"dir": str(folder)},
                hosts={"web-1": sshd.host().model_dump(mode="json")},
                remediation={"approvers": {"cli": ["oncall"]}},
            ) as (client, services),
            working(services),
        ):
            await post(client)
            await until(lambda: idle(engine))
            await services.approvals.decide(1, True, Actor("cli", "oncall"))
            await until(lambda: len(fake_grafana.annotations) == 2)  # opened, executed: now being verified
            await post(client, "resolved")  # Alertmanager says it resolved: the verification decides at once
            await until(lambda: len(fake_grafana.annotations) == 4)
    tags = {annotation["tags"][1]: annotation for annotation in fake_grafana.annotations}
    verified = tags["verified"]
    assert {"action:tidy", "outcome:recovered", "host:web-1", *TAGS} <= set(verified["tags"])
    assert (
        verified["text"].startswith("tidy 执行后 ") and "秒恢复，由 oncall 批准" in verified["text"]
    )  # zh-CN
    assert verified["time"] == verified["timeEnd"]
