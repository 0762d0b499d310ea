"""The fault process of an incident, walked through announce, diagnose, approve, execute and resolve: each stage's
time on the page, in the API and in `aiops incidents export`; the time-to histograms observed in /metrics."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiops.actions.approvals import Actor
from aiops.cli import main
from aiops.models import Proposal
from aiops.store import actions
from tests.actions.test_remediation import work
from tests.conftest import DATA
from tests.support.app import AUTH, proposals

REMEDIATION = {"approvers": {"cli": ["oncall"]}, "dry_run": True}
REACHED = ["opened", "announced", "diagnosed", "proposed", "decided", "executed", "resolved"]


async def walk(client: Any, services: Any) -> int:
    """One incident from firing to resolved, its proposal approved on the way; returns its id."""
    [item] = await proposals(client, services, [("systemctl", "restart", "nginx")])
    decision = await services.approvals.decide(item["id"], True, Actor("cli", "oncall"))
    assert decision.outcome == "approved"
    await work(services)
    resolved = await client.post(
        "/webhook/alertmanager", content=(DATA / "resolved.json").read_bytes(), headers=AUTH
    )
    await services.pipeline.run(int(resolved.json()["delivery"]))
    return int(item["incident_id"])


async def test_each_stage_has_its_time_on_the_page_and_in_the_api(app_for: Callable[..., Any]) -> None:
    async with app_for(remediation=REMEDIATION, server={"language": "en"}) as (client, services):
        incident_id = await walk(client, services)
        api = (await client.get(f"/api/v1/incidents/{incident_id}")).json()
        page = (await client.get(f"/incidents/{incident_id}")).text
        metrics = (await client.get("/metrics")).text
    stages = {stage["stage"]: stage for stage in api["process"]}
    assert [stage["stage"] for stage in api["process"]] == [*REACHED[:6], "verified", "resolved"]
    assert all(stages[name]["at"] is not None for name in REACHED), stages
    assert stages["verified"]["at"] is None, "no verification in this store yet"
    assert stages["opened"]["after_seconds"] == 0
    assert all(stages[name]["after_seconds"] >= 0 for name in REACHED)
    decided, executed = stages["decided"]["after_seconds"], stages["executed"]["after_seconds"]
    assert stages["proposed"]["after_seconds"] <= decided <= executed <= stages["resolved"]["after_seconds"]
    assert stages["decided"]["detail"]["text"] == "approved by oncall via cli"
    assert "restart-service on web-1" in stages["executed"]["detail"]["text"]
    for name in REACHED:
        row = re.search(rf'<tr class="[^"]*" data-stage="{name}"><td>[^<]+</td><td>([^<]+)</td>', page)
        assert row is not None and row.group(1).startswith("20"), name
    for histogram, labels in (
        ("aiops_time_to_announce_seconds", 'severity="warning"'),
        ("aiops_time_to_diagnosis_seconds", 'severity="warning"'),
        ("aiops_time_to_decision_seconds", 'decided_via="cli",outcome="approved",severity="warning"'),
        ("aiops_time_to_resolve_seconds", 'severity="warning"'),
    ):
        assert f"{histogram}_count{{{labels}}} 1.0" in metrics, histogram


async def test_an_auto_decision_is_observed_as_decided_by_the_policy(app_for: Callable[..., Any]) -> None:
    async with app_for(remediation={"mode": "auto"}) as (client, services):
        answer = await client.post(
            "/webhook/alertmanager", content=(DATA / "firing.json").read_bytes(), headers=AUTH
        )
        delivery = int(answer.json()["delivery"])
        await services.pipeline.run(delivery)
        low = Proposal("restart-service", "web-1", ("true",), "low", "safe", alertname="HostOutOfDiskSpace")
        async with services.engine.begin() as conn:
            await services.approvals.record(conn, 1, delivery, [low])
            [item] = await actions.of_delivery(conn, delivery)
        metrics = (await client.get("/metrics")).text
    assert (item["state"], item["decided_by"], item["decided_via"]) == ("approved", "policy", "auto")
    assert (
        'aiops_time_to_decision_seconds_count{decided_via="auto",outcome="approved",severity="warning"} 1.0'
        in metrics
    )


async def test_export_writes_every_section_and_an_unknown_id_exits_2(
    app_for: Callable[..., Any], tmp_path: Path, capsys: Any
) -> None:
    async with app_for(remediation=REMEDIATION, server={"language": "en"}) as (client, services):
        incident_id = await walk(client, services)
        url = services.settings.database.url
    config = tmp_path / "aiops.yml"
    config.write_text(json.dumps({"database": {"url": url}, "server": {"language": "en"}}))
    exported = await asyncio.to_thread(
        main, ["--config", str(config), "incidents", "export", str(incident_id)]
    )
    markdown = capsys.readouterr().out
    missing = await asyncio.to_thread(main, ["--config", str(config), "incidents", "export", "999"])
    err = capsys.readouterr().err
    assert exported == 0
    for heading in (
        "## Outcome",
        "## Fault process",
        "## Alerts",
        "## Evidence",
        "## Diagnosis",
        "## Proposals and decisions",
        "## Executions",
        "## Audit trail",
        "## Timeline",
    ):
        assert f"\n{heading}\n" in markdown, heading
    assert "HostOutOfDiskSpace" in markdown and "systemctl restart nginx" in markdown
    assert "| decided |" in markdown and "approved by oncall via cli" in markdown
    assert "All alerts resolved at" in markdown
    assert missing == 2 and err == "aiops: incident 999: no such incident\n"


async def test_export_speaks_zh_cn_by_default(
    app_for: Callable[..., Any], tmp_path: Path, capsys: Any
) -> None:
    async with app_for(remediation=REMEDIATION) as (client, services):
        incident_id = await walk(client, services)
        url = services.settings.database.url
    config = tmp_path / "aiops.yml"
    config.write_text(json.dumps({"database": {"url": url}}))
    assert (
        await asyncio.to_thread(main, ["--config", str(config), "incidents", "export", str(incident_id)]) == 0
    )
    markdown = capsys.readouterr().out
    assert "## 故障处理过程" in markdown and "## 修复建议与决定" in markdown
