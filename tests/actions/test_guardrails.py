"""Guardrails of `remediation.mode: auto`, in-process against a real sshd: the pause switch (CLI, API, card
buttons) and the budgets make a low-risk proposal wait for an approval, say which guardrail did, and leave every
change in the audit trail."""

from __future__ import annotations

import asyncio
import getpass
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.cli import main
from aiops.i18n import message
from aiops.service import Services
from aiops.store import actions, verifications
from tests.actions.test_remediation import work
from tests.conftest import DATA
from tests.support.app import AUTH
from tests.support.sshd import SshServer, running_sshd

pytestmark = pytest.mark.timeout(180)

CATALOG = """
tidy:
  description: A low-risk fix that succeeds
  argv: [echo, tidied]
  target: labels.instance
  risk: low
  timeout: 10s
"""
ME = getpass.getuser()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def runbooks(root: Path) -> Path:
    folder = root / "runbooks"
    folder.mkdir(exist_ok=True)
    (folder / "actions.yml").write_text(CATALOG)
    (folder / "HostOutOfDiskSpace.md").write_text(
        "---\nalerts: [HostOutOfDiskSpace]\nactions: [tidy]\n---\n# Disk\n"
    )
    (folder / "HostHighLoad.md").write_text("---\nalerts: [HostHighLoad]\nactions: [tidy]\n---\n# Load\n")
    return folder


@asynccontextmanager
async def automatic(
    app_for: Any, tmp_path: Path, sshd: SshServer, **sections: Any
) -> AsyncIterator[tuple[Any, Services]]:
    host = {**sshd.host().model_dump(mode="json"), "connect_timeout": "5s"}
    remediation = {"mode": "auto", "approvers": {"cli": ["oncall"]}, **sections.pop("remediation", {})}
    async with app_for(
        runbooks={"dir": str(runbooks(tmp_path))},
        hosts={name: host for name in ("web-1", "web-2", "web-3")},
        remediation=remediation,
        server={"language": "en"},
        **sections,
    ) as (client, services):
        yield client, services


def alert(number: int, alertname: str = "HostOutOfDiskSpace", host: str = "web-1") -> bytes:
    """A firing group of its own (a new incident each time) for `alertname` on `host`."""
    body = json.loads((DATA / "firing.json").read_text())
    body["groupKey"] += f"-{number}"
    for item in body["alerts"]:
        item["fingerprint"] = uuid.uuid4().hex[:16]
        item["labels"].update(alertname=alertname, instance=f"{host}:9100")
    body["commonLabels"].update(alertname=alertname, instance=f"{host}:9100")
    body["groupLabels"] = {"alertname": alertname, "instance": f"{host}:9100"}
    return json.dumps(body).encode()


async def deliver(client: Any, services: Services, body: bytes) -> dict[str, Any]:
    """Post the group, work every job it makes, and return the proposal it led to, as stored now."""
    answer = await client.post("/webhook/alertmanager", content=body, headers=AUTH)
    delivery = int(answer.json()["delivery"])
    await work(services)
    async with services.engine.connect() as conn:
        [item] = await actions.of_delivery(conn, delivery)
        item["execution"] = await actions.execution_of(conn, item["id"])
    return item


async def console_bodies(engine: AsyncEngine, incident_id: int) -> str:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT body FROM notifications WHERE incident_id = :id AND channel = 'console'"),
            {"id": incident_id},
        )
        return "\n".join(row.body for row in rows)


async def switch_audit(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT kind, actor, channel FROM audit WHERE kind LIKE 'remediation_%' OR kind = 'switch_refused'"
            )
        )
        return [(row.kind, row.actor, row.channel) for row in rows]


def config_file(tmp_path: Path, services: Services, **remediation: Any) -> Path:
    path = tmp_path / "aiops.yml"
    values = {
        "database": {"url": services.settings.database.url},
        "webhook": {"token": "webhook-token-0123456789"},
        "remediation": {"mode": "auto", **remediation},
    }
    path.write_text(json.dumps(values))
    return path


async def cli(config: Path, *args: str) -> int:
    return await asyncio.to_thread(main, ["--config", str(config), *args])


async def test_a_pause_from_the_cli_holds_auto_until_resume(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, capsys: Any
) -> None:
    async with automatic(app_for, tmp_path, sshd) as (client, services):
        before = await deliver(client, services, alert(1))
        config = config_file(tmp_path, services, approvers={"cli": [ME]})
        paused = await cli(config, "remediation", "pause")
        status = await cli(config, "remediation", "status")
        held = await deliver(client, services, alert(2))
        card = await console_bodies(engine, held["incident_id"])
        resumed = await cli(config, "remediation", "resume")
        after = await deliver(client, services, alert(3))
        audit = await switch_audit(engine)
    out = capsys.readouterr().out
    assert (paused, status, resumed) == (0, 0, 0)
    assert before["state"] == "succeeded" and before["decided_via"] == "auto"
    assert held["state"] == "pending" and held["execution"] is None, "paused: it waits for an approval"
    assert f"automatic remediation is paused (by {ME} via cli" in str(held["held"])
    assert "automatic remediation is paused" in card and "aiops approvals approve" in card
    assert after["state"] == "succeeded" and after["decided_via"] == "auto" and after["held"] is None
    assert f"automatic remediation: paused by {ME} via cli since" in out
    assert audit == [("remediation_paused", ME, "cli"), ("remediation_resumed", ME, "cli")]


async def test_resume_from_the_cli_needs_an_approver(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, capsys: Any
) -> None:
    async with automatic(app_for, tmp_path, sshd) as (_client, services):
        config = config_file(tmp_path, services)  # nobody is an approver of the cli channel
        paused = await cli(config, "remediation", "pause")
        resumed = await cli(config, "remediation", "resume")
        audit = await switch_audit(engine)
    assert (paused, resumed) == (0, 1)
    assert f"{ME} may not resume automatic remediation via cli" in capsys.readouterr().err
    assert audit == [("remediation_paused", ME, "cli"), ("switch_refused", ME, "cli")]


async def test_resume_also_resets_a_tripped_breaker_whether_or_not_anyone_paused(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer, capsys: Any
) -> None:
    async with automatic(app_for, tmp_path, sshd) as (client, services):
        async with engine.begin() as conn:
            await verifications.trip(conn, message("breaker_tripped", bad=5, last=10))
        held = await deliver(client, services, alert(1))
        config = config_file(tmp_path, services, approvers={"cli": [ME]})
        status = await cli(config, "remediation", "status")
        resumed = await cli(config, "remediation", "resume")
        after = await deliver(client, services, alert(2))
        again = await cli(config, "remediation", "resume")
        async with engine.connect() as conn:
            kinds = [row.kind for row in await conn.execute(text("SELECT kind FROM audit ORDER BY id"))]
    out = capsys.readouterr().out
    assert held["state"] == "pending" and "circuit breaker" in str(held["held"])
    assert "automatic execution is held" in out.split("remediation.mode")[0], "status names the breaker"
    assert (status, resumed, again) == (0, 0, 0)
    assert after["state"] == "succeeded" and after["decided_via"] == "auto"
    assert kinds.count("breaker_reset") == 1 and "remediation_resumed" not in kinds, kinds
    assert "not paused" in out.rsplit("\n", 2)[-2], "a second resume has nothing to do"


async def test_each_budget_once_spent_holds_the_next_proposal_naming_it(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer
) -> None:
    budgets = {"per_rule_per_hour": 1, "per_hour": 2}
    async with automatic(app_for, tmp_path, sshd, remediation={"budgets": budgets}) as (client, services):
        first = await deliver(client, services, alert(1))
        same_rule = await deliver(client, services, alert(2))
        other_rule = await deliver(client, services, alert(3, "HostHighLoad"))
        over_all = await deliver(client, services, alert(4, "HostHighLoad", "web-2"))
        page = await client.get(f"/incidents/{over_all['incident_id']}")
    assert first["state"] == "succeeded" and other_rule["state"] == "succeeded"
    assert same_rule["state"] == "pending" and same_rule["execution"] is None
    assert "remediation.budgets.per_rule_per_hour: 1" in str(same_rule["held"])
    assert "alert rule HostOutOfDiskSpace" in str(same_rule["held"])
    assert over_all["state"] == "pending" and "remediation.budgets.per_hour: 2" in str(over_all["held"])
    assert "remediation.budgets.per_hour: 2" in page.text and "/approvals/" in page.text


async def test_at_most_n_hosts_are_touched_automatically_in_a_storm(
    app_for: Any, engine: AsyncEngine, tmp_path: Path, sshd: SshServer
) -> None:
    storm = {"min_members": 2, "window": "10m"}
    limits = {"remediation": {"budgets": {"hosts_per_storm": 1}}, "storm": storm}
    async with automatic(app_for, tmp_path, sshd, **limits) as (client, services):
        found = [
            await deliver(client, services, alert(n, host=h))
            for n, h in enumerate(("web-1", "web-2", "web-3"))
        ]
        again = await deliver(client, services, alert(9, host="web-1"))
        async with engine.connect() as conn:
            clustered = await conn.execute(
                text("SELECT count(*) FROM incidents WHERE cluster_id IS NOT NULL")
            )
            members = int(clustered.scalar_one())
    assert members == 4, "all four incidents are one storm"
    assert [item["state"] for item in found] == ["succeeded", "pending", "pending"]
    for item in found[1:]:
        assert "already had actions run automatically on 1 hosts" in str(item["held"])
        assert "remediation.budgets.hosts_per_storm: 1" in str(item["held"])
    assert again["state"] == "succeeded", "a host already touched in the storm does not count again"


@pytest.mark.parametrize(
    ("field", "value"),
    [("per_rule_per_hour", 0), ("per_hour", "many"), ("hosts_per_storm", -1), ("per_day", 3)],
)
async def test_a_bad_budget_is_refused_naming_the_field(
    tmp_path: Path, field: str, value: Any, capsys: Any
) -> None:
    config = tmp_path / "aiops.yml"
    config.write_text(json.dumps({"remediation": {"budgets": {field: value}}}))
    assert await cli(config, "check") == 2
    assert f"remediation.budgets.{field}" in capsys.readouterr().err
