"""Verification of executions on a real sshd and the real store, in-process: the circuit breaker of `auto`, and the
memory of what worked.

Without a Prometheus in the configuration, a verification goes by Alertmanager alone: the fix recovered the
incident when its resolution arrives within the window, and did not otherwise.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.actions.approvals import Actor
from aiops.i18n import say
from aiops.llm.prompt import ActionInfo, PromptBuilder
from aiops.queue import Deferred
from aiops.service import Services
from aiops.store import actions, incidents, jobs, verifications
from tests.conftest import DATA
from tests.fakes.robots import FakeFeishuRobot
from tests.support.app import AUTH
from tests.support.binaries import free_port
from tests.support.sshd import SshServer, running_sshd

APPROVER = Actor("cli", "oncall")
WINDOW = 1.0  # seconds each fix is watched: the tests wait it out


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def runbooks(root: Path, risk: str, allowed: list[str], query: str | None = None) -> Path:
    folder = root / "runbooks"
    folder.mkdir(exist_ok=True)
    entries = {
        "tidy": {"description": "Changes nothing the alert watches", "argv": ["true"]},
        "restart-unit": {"description": "Restart a unit", "argv": ["echo", "restarting"]},
        "broken": {"description": "Fails", "argv": ["sh", "-c", "echo no >&2; exit 3"]},
    }
    catalog = {
        name: {
            **entry,
            "target": "labels.instance",
            "risk": risk,
            "timeout": "10s",
            "verify": {"window": f"{WINDOW}s", **({"query": query} if query else {})},
        }
        for name, entry in entries.items()
    }
    (folder / "actions.yml").write_text(json.dumps(catalog))
    (folder / "HostOutOfDiskSpace.md").write_text(
        f"---\nalerts: [HostOutOfDiskSpace]\nactions: {json.dumps(allowed)}\n---\n# Disk\n"
    )
    return folder


@asynccontextmanager
async def service(
    app_for: Any,
    tmp_path: Path,
    sshd: SshServer,
    risk: str,
    allowed: list[str],
    query: str | None = None,
    sections: dict[str, Any] | None = None,
    **policy: Any,
) -> AsyncIterator[tuple[Any, Services]]:
    hosts = {"web-1": {**sshd.host().model_dump(mode="json"), "connect_timeout": "5s"}}
    async with app_for(
        **(sections or {}),
        runbooks={"dir": str(runbooks(tmp_path, risk, allowed, query))},
        hosts=hosts,
        remediation={"approvers": {"cli": ["oncall"]}, **policy},
        server={"language": "en"},
    ) as (client, services):
        yield client, services


def payload(group: str, status: str = "firing", starts: str | None = None) -> bytes:
    """tests/data's alert in its own group; `starts` (ISO time): it fired again then."""
    data = json.loads((DATA / ("firing.json" if status == "firing" else "resolved.json")).read_text())
    data["groupKey"] = f"{data['groupKey']}:{group}"
    for alert in data["alerts"]:
        alert["startsAt"] = starts or alert["startsAt"]
    return json.dumps(data).encode()


async def work(services: Services) -> int:
    """Work the queue as the workers would, until nothing is due (a deferred job waits for its time)."""
    done = 0
    while True:
        async with services.engine.begin() as conn:
            job = await jobs.claim(conn, "test", 60)
        if job is None:
            return done
        try:
            await services.handlers[job.kind](job)
        except Deferred as deferred:
            async with services.engine.begin() as conn:
                await jobs.defer(conn, job.id, "test", deferred.delay)
            continue
        async with services.engine.begin() as conn:
            await jobs.finish(conn, job.id, "test")
        done += 1


async def deliver(client: Any, services: Services, body: bytes) -> None:
    answer = await client.post("/webhook/alertmanager", content=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    await work(services)


async def watch_out(services: Services) -> None:
    """Let every verification's window end, and work what is then due."""
    await asyncio.sleep(WINDOW + 0.2)
    await work(services)


async def incident_proposals(engine: AsyncEngine, incident_id: int) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        found = (await actions.of_incident(conn, incident_id))["proposals"]
        return await verifications.attach(conn, found)


async def all_audit(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return await actions.audit_since(conn, 0)


async def breaker_gauge(client: Any) -> str:
    text = (await client.get("/metrics")).text
    return next(line for line in text.splitlines() if line.startswith("aiops_remediation_breaker_tripped "))


async def test_the_breaker_trips_on_fixes_that_did_not_work_holds_auto_and_resets(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, capsys: Any
) -> None:
    breaker = {"last": 4, "threshold": 0.5}  # two bad outcomes among the last four trip it
    async with service(app_for, tmp_path, sshd, "low", ["tidy"], mode="auto", breaker=breaker) as (
        client,
        services,
    ):
        for group in ("a", "b"):
            await deliver(client, services, payload(group))
            await watch_out(services)
        tripped = await breaker_gauge(client)
        await deliver(client, services, payload("c"))
        held = await incident_proposals(engine, 3)
        async with engine.begin() as conn:
            assert await verifications.breaker_reset(conn, "oncall")
            assert not await verifications.breaker_reset(conn, "oncall")  # once
        reset = await breaker_gauge(client)
        await deliver(client, services, payload("d"))
        after = await incident_proposals(engine, 4)
        trail = await all_audit(engine)
    for incident_id in (1, 2):
        [fix] = await incident_proposals(engine, incident_id)
        assert fix["state"] == "succeeded" and fix["decided_via"] == "auto", fix
        assert fix["verification"]["outcome"] == "not_recovered", fix["verification"]
    assert (
        tripped == "aiops_remediation_breaker_tripped 1.0"
        and reset == "aiops_remediation_breaker_tripped 0.0"
    )
    assert [(p["state"], p["execution"]) for p in held] == [("pending", None)], held
    assert say(held[0]["held"], "en") == (
        "tidy would run automatically, but the circuit breaker is tripped: it waits for an approval"
    )
    assert after[0]["state"] == "succeeded" and after[0]["decided_via"] == "auto", after
    kinds = [(entry["kind"], entry["incident_id"]) for entry in trail if entry["kind"] not in ("proposed",)]
    assert kinds == [
        ("approved", 1),
        ("execution_started", 1),
        ("executed", 1),
        ("verified_not_recovered", 1),
        ("approved", 2),
        ("execution_started", 2),
        ("executed", 2),
        ("verified_not_recovered", 2),
        ("breaker_tripped", 2),
        ("held", 3),
        ("breaker_reset", None),
        ("approved", 4),
        ("execution_started", 4),
        ("executed", 4),
    ], kinds
    printed = capsys.readouterr().out
    assert "circuit breaker tripped: 2 of the last 4 automatic fixes failed or did not recover" in printed


async def test_the_fix_that_recovered_the_first_occurrence_comes_first_the_second_time(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, capsys: Any
) -> None:
    async with service(app_for, tmp_path, sshd, "high", ["tidy", "restart-unit"]) as (client, services):
        await deliver(client, services, payload("x"))
        first = {p["action_id"]: p for p in await incident_proposals(engine, 1)}
        assert (await services.approvals.decide(first["restart-unit"]["id"], True, APPROVER)).took_effect
        await work(services)
        await deliver(client, services, payload("x", "resolved"))  # Alertmanager: it resolved: decided now
        [fixed] = [p for p in await incident_proposals(engine, 1) if p["execution"]]
        capsys.readouterr()
        again = payload("x", starts="2026-11-24T05:00:00Z")
        await deliver(client, services, again)  # the same alert on the same target, again
        second = await incident_proposals(engine, 2)
        async with engine.connect() as conn:
            triage = await incidents.latest_triage(conn, 2)
        page = (await client.get("/incidents/2")).text
        metrics = (await client.get("/metrics")).text
    assert fixed["action_id"] == "restart-unit" and fixed["verification"]["outcome"] == "recovered", fixed
    assert [p["action_id"] for p in second] == ["restart-unit", "tidy"], (
        "the fix that worked is proposed first"
    )
    assert triage is not None
    summary = triage.diagnosis.summary.splitlines()
    assert re.fullmatch(
        r"Last time on this target restart-unit recovered it [0-9.]+ s after it ran \(approved by oncall\)"
        r" \(incident #1\)",
        summary[0],
    ), summary
    card = capsys.readouterr().out
    assert card.index("#3 restart-unit") < card.index("#4 tidy"), card
    assert card.index("Last time on this target restart-unit recovered it") < card.index("Actions:"), card
    builder = PromptBuilder(services.templates, budget=20_000, language="en")
    offered = [ActionInfo("tidy", "high", "tidy"), ActionInfo("restart-unit", "high", "restart")]
    prompt = builder.build(triage.correlation, triage.runbook, triage.evidence, offered).text
    remembered = prompt.index("WHAT WAS DONE BEFORE ON THIS TARGET")
    assert remembered < prompt.index("ALERTS ("), "what worked comes first in the prompt"
    assert "restart-unit recovered it" in prompt[remembered : prompt.index("ALERTS (")]
    allowed = prompt[prompt.index("ALLOWED ACTIONS:") :]
    assert allowed.index("- restart-unit") < allowed.index("- tidy"), allowed
    assert '<a href="/incidents/1">#1</a>' in page and "restart-unit recovered it" in page
    recovery = 'aiops_time_to_recovery_seconds_count{decided="approved",severity="warning"} 1.0'
    assert recovery in metrics, [line for line in metrics.splitlines() if "recovery" in line]


async def test_a_verification_prometheus_cannot_answer_is_unknown_and_says_so(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer
) -> None:
    nowhere = {"prometheus": {"url": f"http://127.0.0.1:{free_port()}", "timeout": "1s"}}
    query = 'node_filesystem_avail_bytes{instance="{{ labels.instance }}"} > 0'
    async with service(
        app_for, tmp_path, sshd, "low", ["tidy"], query, nowhere, mode="auto", verify_every="200ms"
    ) as (client, services):
        await deliver(client, services, payload("u"))
        await watch_out(services)
        [fix] = await incident_proposals(engine, 1)
        trail = [entry["kind"] for entry in await all_audit(engine)]
        metrics = (await client.get("/metrics")).text
    verification = fix["verification"]
    assert verification["outcome"] == "unknown", verification
    said = say(verification["detail"], "en")
    assert said.startswith(
        "unknown whether tidy on web-1 recovered the incident: Prometheus could not be asked"
    ), said
    assert trail[-1] == "verified_unknown" and "breaker_tripped" not in trail, trail
    assert 'aiops_verifications_total{outcome="unknown"} 1.0' in metrics


async def test_a_fix_that_did_not_work_is_escalated_to_the_second_route_too(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer
) -> None:
    robot = FakeFeishuRobot("robot-secret-0123456789", time.time).start()
    db_team = {
        "name": "db-team",
        "url": robot.url,
        "secret": "robot-secret-0123456789",
        "match": ['team="db"'],
    }
    try:
        async with service(
            app_for,
            tmp_path,
            sshd,
            "low",
            ["tidy"],
            sections={"channels": {"feishu_webhook": [db_team]}},
            mode="auto",
            escalation={"warning": {"db-team": ["ou_dba"]}},
            escalate_to=["db-team"],
        ) as (client, services):
            await deliver(client, services, payload("e"))
            before = len(robot.messages)
            await watch_out(services)
            [fix] = await incident_proposals(engine, 1)
    finally:
        robot.stop()
    assert fix["verification"]["outcome"] == "not_recovered", fix
    assert before == 0, "the robot's match does not take the incident"
    [message] = robot.messages
    body = json.dumps(message, ensure_ascii=False)
    assert "<at id=ou_dba></at>" in body and "not recovered: tidy on web-1 ran" in body, body


async def test_a_failed_automatic_fix_is_escalated_and_counts_towards_the_breaker(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer
) -> None:
    robot = FakeFeishuRobot("robot-secret-0123456789", time.time).start()
    team = {"name": "team", "url": robot.url, "secret": "robot-secret-0123456789"}
    try:
        async with service(
            app_for,
            tmp_path,
            sshd,
            "low",
            ["broken"],
            sections={"channels": {"feishu_webhook": [team]}},
            mode="auto",
            escalation={"warning": {"team": ["ou_lead"]}},
            breaker={"last": 2, "threshold": 0.5},
        ) as (client, services):
            await deliver(client, services, payload("f"))
            [fix] = await incident_proposals(engine, 1)
            trail = [entry["kind"] for entry in await all_audit(engine)]
    finally:
        robot.stop()
    assert fix["state"] == "failed" and fix["verification"] is None, "a failed fix is not watched"
    mentioning = [m for m in robot.messages if "<at id=ou_lead></at>" in json.dumps(m, ensure_ascii=False)]
    assert len(mentioning) == 1 and "ran and failed" in json.dumps(mentioning[0], ensure_ascii=False)
    assert trail[-2:] == ["execution_failed", "breaker_tripped"], trail
