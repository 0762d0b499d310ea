"""Remediation end to end in-process: proposals from the runbook, approvals with their edge cases, and execution on
a real sshd — what ran is checked on the remote side, not taken from aiops's word."""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.actions.approvals import Actor
from aiops.cli import main
from aiops.queue import Deferred
from aiops.service import Services
from aiops.store import actions, jobs
from tests.conftest import DATA
from tests.support.app import AUTH
from tests.support.sshd import SshServer, running_sshd

pytestmark = pytest.mark.timeout(120)

APPROVER = Actor("cli", "oncall")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker"


def catalog(marker: Path) -> str:
    return f"""
echo-unit:
  description: Print the unit name exactly as the remote side receives it
  argv: [printf, "[%s]\\n", "{{unit}}"]
  params: {{unit: {{from: labels.service, pattern: '(?s).{{1,200}}'}}}}
  target: labels.instance
  risk: high
  timeout: 10s
restart-unit:
  description: Restart a unit (strict pattern)
  argv: [echo, restarting, "{{unit}}"]
  params: {{unit: {{from: labels.service, pattern: '[a-zA-Z0-9@._-]{{1,64}}'}}}}
  target: labels.instance
  risk: high
  timeout: 10s
slow:
  description: Outlives its timeout
  argv: [sh, -c, "sleep 5; touch {marker}.slow"]
  target: labels.instance
  risk: high
  timeout: 1s
failing:
  description: Fails
  argv: [sh, -c, "echo broken >&2; exit 3"]
  target: labels.instance
  risk: low
  timeout: 10s
"""


def runbooks(root: Path, marker: Path, allowed: list[str]) -> Path:
    folder = root / "runbooks"
    folder.mkdir(exist_ok=True)
    (folder / "actions.yml").write_text(catalog(marker))
    (folder / "HostOutOfDiskSpace.md").write_text(
        f"---\nalerts: [HostOutOfDiskSpace]\nactions: {json.dumps(allowed)}\n---\n# Disk\n"
    )
    return folder


def payload(service: str = "nginx.service", status: str = "firing") -> bytes:
    data = json.loads((DATA / ("firing.json" if status == "firing" else "resolved.json")).read_text())
    for alert in data["alerts"]:
        alert["labels"]["service"] = service
    return json.dumps(data).encode()


@asynccontextmanager
async def remediation(
    app_for: Any, tmp_path: Path, sshd: SshServer, marker: Path, allowed: list[str], **policy: Any
) -> AsyncIterator[tuple[Any, Services]]:
    host = sshd.host()
    hosts = {"web-1": {**host.model_dump(mode="json"), "connect_timeout": "5s"}}
    settings = {"approvers": {"cli": ["oncall"], "web": ["alice"]}, **policy}
    async with app_for(
        runbooks={"dir": str(runbooks(tmp_path, marker, allowed))},
        hosts=hosts,
        remediation=settings,
        server={"language": "en"},
    ) as (client, services):
        yield client, services


async def deliver(client: Any, services: Services, body: bytes) -> int:
    answer = await client.post("/webhook/alertmanager", content=body, headers=AUTH)
    await work(services)
    return int(answer.json()["delivery"])


async def work(services: Services) -> int:
    """Work the queue as the service's workers would, until nothing is due; returns the jobs done (a job that
    deferred itself, such as a verification still watching, is not done)."""
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


async def proposals(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        found = (await actions.of_incident(conn, 1))["proposals"]
    return {item["action_id"]: item for item in found}


async def audit_kinds(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return [entry["kind"] for entry in (await actions.of_incident(conn, 1))["audit"]]


async def test_an_approved_action_runs_once_and_its_result_lands_on_the_incident(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, marker: Path, capsys: Any
) -> None:
    async with remediation(app_for, tmp_path, sshd, marker, ["restart-unit"]) as (client, services):
        await deliver(client, services, payload())
        pending = (await proposals(engine))["restart-unit"]
        assert (pending["state"], pending["host"], pending["argv"]) == (
            "pending",
            "web-1",
            ["echo", "restarting", "nginx.service"],
        )
        first = await services.approvals.decide(pending["id"], True, APPROVER)
        second = await services.approvals.decide(pending["id"], True, APPROVER)  # a double click
        assert (first.outcome, second.outcome) == ("approved", "already")
        assert await work(services) == 1
        assert await work(services) == 0
        item = (await proposals(engine))["restart-unit"]
        response = await client.get("/api/v1/incidents/1")
    assert item["state"] == "succeeded" and item["execution"]["exit_status"] == 0
    assert item["execution"]["stdout"] == "restarting nginx.service\n"
    async with engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM executions"))).scalar_one()
    assert count == 1
    assert await audit_kinds(engine) == ["proposed", "approved", "execution_started", "executed"]
    assert response.json()["proposals"][0]["execution"]["state"] == "succeeded"
    printed = capsys.readouterr().out
    assert "aiops approvals approve 1" in printed
    assert "restart-unit on web-1 — ran, exit status 0" in printed and "restarting nginx.service" in printed


@pytest.mark.parametrize(
    "value",
    [
        "x; touch MARKER",
        "$(touch MARKER)",
        "`touch MARKER`",
        "a\ntouch MARKER",
        "--help",
        "ѕystemd'\"\\ MARKER",
    ],
    ids=["semicolon", "substitution", "backticks", "newline", "option", "look-alike-and-quotes"],
)
async def test_hostile_label_values_are_refused_or_inert(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, marker: Path, value: str
) -> None:
    hostile = value.replace("MARKER", str(marker))
    async with remediation(app_for, tmp_path, sshd, marker, ["echo-unit", "restart-unit"]) as (
        client,
        services,
    ):
        await deliver(client, services, payload(hostile))
        found = await proposals(engine)
        assert found["restart-unit"]["state"] == "refused"
        if hostile.startswith("-"):
            # Even the permissive pattern does not let a value pass as an option.
            assert found["echo-unit"]["state"] == "refused"
            assert "would be read as an option" in str(found["echo-unit"]["detail"])
            return
        assert "does not match" in str(found["restart-unit"]["detail"])
        await services.approvals.decide(found["echo-unit"]["id"], True, APPROVER)
        await work(services)
        echoed = (await proposals(engine))["echo-unit"]
    assert echoed["argv"] == ["printf", "[%s]\n", hostile]
    assert echoed["execution"]["stdout"] == f"[{hostile}]\n"  # printed verbatim: nothing was interpreted
    assert not await asyncio.to_thread(marker.exists)


async def test_approval_edge_cases(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, marker: Path
) -> None:
    async with remediation(app_for, tmp_path, sshd, marker, ["restart-unit", "failing"]) as (
        client,
        services,
    ):
        await deliver(client, services, payload())
        found = await proposals(engine)
        restart, failing = found["restart-unit"]["id"], found["failing"]["id"]
        stranger = await services.approvals.decide(restart, True, Actor("cli", "mallory"))
        web_user_on_cli = await services.approvals.decide(restart, True, Actor("cli", "alice"))
        rejected = await services.approvals.decide(restart, False, APPROVER)
        after_reject = await services.approvals.decide(restart, True, APPROVER)
        wrong_argv = await services.approvals.decide(failing, True, APPROVER, expected_hash="0" * 64)
        await deliver(client, services, payload(status="resolved"))
        after_resolve = await services.approvals.decide(failing, True, APPROVER)
        assert await work(services) == 0
    assert (stranger.outcome, web_user_on_cli.outcome) == ("refused", "refused")
    assert "may not approve" in str(stranger.message)
    assert (rejected.outcome, after_reject.outcome) == ("rejected", "refused")
    assert "a rejection is final" in str(after_reject.message)
    assert wrong_argv.outcome == "refused"
    assert after_resolve.outcome == "moot"
    states = {key: item["state"] for key, item in (await proposals(engine)).items()}
    assert states == {"restart-unit": "rejected", "failing": "moot"}
    kinds = await audit_kinds(engine)
    assert kinds.count("approval_refused") == 2 and "moot" in kinds


async def test_an_expired_proposal_cannot_be_approved(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, marker: Path
) -> None:
    async with remediation(app_for, tmp_path, sshd, marker, ["restart-unit"], approval_ttl="1s") as (
        client,
        services,
    ):
        await deliver(client, services, payload())
        proposal_id = (await proposals(engine))["restart-unit"]["id"]
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE proposals SET expires_at = expires_at - 60"))
        decision = await services.approvals.decide(proposal_id, True, APPROVER)
        assert await work(services) == 0
    assert decision.outcome == "expired"
    assert (await proposals(engine))["restart-unit"]["state"] == "expired"
    assert "expired" in await audit_kinds(engine)


async def test_a_command_that_outlives_its_timeout_is_killed_and_a_failure_is_recorded(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, marker: Path
) -> None:
    async with remediation(app_for, tmp_path, sshd, marker, ["slow", "failing"]) as (client, services):
        await deliver(client, services, payload())
        found = await proposals(engine)
        for item in found.values():
            await services.approvals.decide(item["id"], True, APPROVER)
        await work(services)
        done = await proposals(engine)
    assert done["slow"]["state"] == "failed" and "killed at its deadline" in str(
        done["slow"]["execution"]["error"]
    )
    assert done["failing"]["state"] == "failed"
    assert (done["failing"]["execution"]["exit_status"], done["failing"]["execution"]["stderr"]) == (
        3,
        "broken\n",
    )
    await asyncio.sleep(5.5)
    assert not await asyncio.to_thread(
        Path(f"{marker}.slow").exists
    )  # the remote sleep was killed with its session


async def test_a_changed_host_key_refuses_the_connection(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, marker: Path
) -> None:
    lying = tmp_path / "known_hosts"
    lying.write_text(sshd.known_hosts_line(sshd.other_key()))
    host = {**sshd.host().model_dump(mode="json"), "known_hosts": str(lying)}
    async with app_for(
        runbooks={"dir": str(runbooks(tmp_path, marker, ["restart-unit"]))},
        hosts={"web-1": host},
        remediation={"approvers": {"cli": ["oncall"]}},
    ) as (client, services):
        await deliver(client, services, payload())
        await services.approvals.decide((await proposals(engine))["restart-unit"]["id"], True, APPROVER)
        await work(services)
        item = (await proposals(engine))["restart-unit"]
    assert item["state"] == "failed"
    assert "known_hosts" in str(item["execution"]["error"])


async def test_dry_run_and_rate_limit(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, marker: Path
) -> None:
    async with remediation(
        app_for, tmp_path, sshd, marker, ["restart-unit"], dry_run=True, max_per_hour=1
    ) as (client, services):
        for index in range(2):
            body = json.loads(payload())
            body["groupKey"] += f"-{index}"
            body["alerts"][0]["fingerprint"] = uuid.uuid4().hex[:16]
            await deliver(client, services, json.dumps(body).encode())
        async with engine.connect() as conn:
            waiting = await actions.pending(conn)
        for item in waiting:
            await services.approvals.decide(item["id"], True, APPROVER)
        await work(services)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT state, detail FROM proposals ORDER BY id"))).all()
    assert [row.state for row in rows] == ["dry_run", "refused"]
    assert "rate limit" in rows[1].detail


async def test_auto_mode_runs_low_risk_at_once_and_suggest_mode_never_runs(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, marker: Path
) -> None:
    async with remediation(app_for, tmp_path, sshd, marker, ["failing", "restart-unit"], mode="auto") as (
        client,
        services,
    ):
        await deliver(client, services, payload())
        states = {key: item["state"] for key, item in (await proposals(engine)).items()}
    assert states == {"failing": "failed", "restart-unit": "pending"}  # low ran, high waits


async def test_the_cli_approves_as_the_local_user(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, marker: Path, capsys: Any
) -> None:
    me = getpass.getuser()
    async with remediation(app_for, tmp_path, sshd, marker, ["restart-unit"]) as (client, services):
        await deliver(client, services, payload())
        settings = services.settings
    config = tmp_path / "aiops.yml"
    config.write_text(
        json.dumps(
            {
                "database": {"url": settings.database.url},
                "remediation": {"approvers": {"cli": [me]}},
                "webhook": {"token": "webhook-token-0123456789"},
            }
        )
    )
    listed = await asyncio.to_thread(main, ["--config", str(config), "approvals", "list"])
    approved = await asyncio.to_thread(main, ["--config", str(config), "approvals", "approve", "1"])
    exported = await asyncio.to_thread(
        main, ["--config", str(config), "audit", "export", "--since", "2000-01-01"]
    )
    out = capsys.readouterr().out
    assert (listed, approved, exported) == (0, 0, 0)
    assert "echo restarting nginx.service" in out and "approved by" not in out.split("\n")[0]
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [event["kind"] for event in events] == ["proposed", "approved"]
    assert events[1]["actor"] == me and events[1]["channel"] == "cli"


async def test_the_incident_page_links_each_pending_proposal_to_its_approval_page(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, marker: Path
) -> None:
    async with remediation(app_for, tmp_path, sshd, marker, ["restart-unit"]) as (client, services):
        await deliver(client, services, payload())
        page = (await client.get("/incidents/1")).text
        [link] = re.findall(r'href="http://[^"]+(/approvals/[^"]+)"', page)
        shown = await client.get(link)
    assert shown.status_code == 401  # the approval page asks for an approver's login first
    assert (await proposals(engine))["restart-unit"]["state"] == "pending"
