"""Storms: incidents opening close together with one cause signature are diagnosed once, as a cluster, and a
storm card lists them; a lone incident, or one with another signature, is diagnosed on its own as before."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.service import Services
from tests.conftest import DATA
from tests.fakes.minimax import FakeMiniMax, Reply
from tests.llm.conftest import GOOD, llm
from tests.support.app import AUTH

STORM = {"window": "5m", "min_members": 3}


def member(number: int, job: str = "node", alertname: str = "HostOutOfDiskSpace") -> dict[str, Any]:
    """firing.json on host web-`number`: the same alert of the same job, as a storm brings them."""
    payload = json.loads((DATA / "firing.json").read_text())
    instance = f"web-{number}:9100"
    payload["groupKey"] += f"/{number}"
    payload["commonAnnotations"] = {}
    payload["groupLabels"]["instance"] = instance
    payload["commonLabels"].update(instance=instance, job=job, alertname=alertname)
    for alert in payload["alerts"]:
        alert["fingerprint"] = f"{number:016x}"
        alert["labels"].update(instance=instance, job=job, alertname=alertname)
    return payload


async def run(client: httpx.AsyncClient, services: Services, payload: dict[str, Any]) -> int:
    answer = await client.post("/webhook/alertmanager", content=json.dumps(payload), headers=AUTH)
    assert answer.status_code == 200, answer.text
    delivery = int(answer.json()["delivery"])
    await services.pipeline.run(delivery)
    return delivery


async def diagnoses(engine: AsyncEngine) -> dict[int, dict[str, Any]]:
    """Each incident's latest diagnosis as stored."""
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT incident_id, diagnosis FROM triages ORDER BY id"))
        return {row.incident_id: json.loads(row.diagnosis) for row in rows}


@pytest.fixture
def model(fake_minimax: FakeMiniMax) -> FakeMiniMax:
    fake_minimax.responder = lambda request: Reply(content=json.dumps(GOOD))
    return fake_minimax


async def test_a_storm_is_diagnosed_once_and_every_member_carries_the_diagnosis(
    app_for: Any, engine: AsyncEngine, model: FakeMiniMax, capsys: pytest.CaptureFixture[str]
) -> None:
    async with app_for(llm=llm(model), storm=STORM, server={"language": "en"}) as (client, services):
        for number in range(1, 7):
            await run(client, services, member(number))
        detail = (await client.get("/api/v1/incidents/5")).json()
        page = (await client.get("/incidents/5")).text
    found = await diagnoses(engine)
    # the first two, before it was a storm, on their own; then one call for the cluster, whatever its size
    assert model.calls == 3
    storm_prompt = json.dumps(model.requests[2]["messages"])
    assert "3 incidents with the same cause signature (HostOutOfDiskSpace job=node)" in storm_prompt
    assert [found[n].get("cluster_id") for n in range(1, 7)] == [None, None, 1, 1, 1, 1]
    assert {found[n]["source"] for n in range(1, 7)} == {"llm"}
    assert all(found[n]["summary"] == GOOD["summary"] for n in range(3, 7))
    assert detail["cluster"]["id"] == 1 and detail["cluster"]["members"] == 6
    assert detail["cluster"]["diagnosis"]["summary"] == GOOD["summary"]
    assert "Diagnosed once for alert storm #1" in page
    printed = capsys.readouterr().out
    assert (
        printed.count("==== Alert storm #1: ") == 2
    )  # the storm card when it formed, and with its diagnosis
    assert "Diagnosed once for all: " + GOOD["summary"] in printed


async def test_another_job_or_a_lone_incident_is_not_part_of_the_storm(
    app_for: Any, engine: AsyncEngine, model: FakeMiniMax, capsys: pytest.CaptureFixture[str]
) -> None:
    async with app_for(llm=llm(model), storm=STORM, server={"language": "en"}) as (client, services):
        for number in range(1, 4):
            await run(client, services, member(number))
        await run(client, services, member(4, job="db"))
        await run(client, services, member(5, alertname="HostHighCpuLoad"))
    found = await diagnoses(engine)
    assert [found[n].get("cluster_id") for n in range(1, 6)] == [None, None, 1, None, None]
    assert model.calls == 5  # three (two alone, one for the cluster), and one each for the others
    assert "Alert storm" not in capsys.readouterr().out.split("web-4:9100")[-1]


async def test_a_member_whose_alerts_change_leaves_the_storm_and_is_diagnosed_alone(
    app_for: Any, engine: AsyncEngine, model: FakeMiniMax
) -> None:
    async with app_for(llm=llm(model), storm=STORM, server={"language": "en"}) as (client, services):
        for number in range(1, 5):
            await run(client, services, member(number))
        changed = member(4)
        other = json.loads(json.dumps(changed["alerts"][0]))
        other["labels"]["alertname"], other["fingerprint"] = "NodeFilesystemReadOnly", "f" * 16
        changed["alerts"].append(other)
        await run(client, services, changed)
        async with engine.connect() as conn:
            cluster = (await conn.execute(text("SELECT cluster_id FROM incidents WHERE id = 4"))).scalar_one()
            members = (await conn.execute(text("SELECT members FROM clusters WHERE id = 1"))).scalar_one()
    assert cluster is None and members == 3  # of the four it had
    assert model.calls == 4  # the new alerts got a diagnosis of their own
    assert (await diagnoses(engine))[4].get("cluster_id") is None


async def test_without_storm_detection_every_incident_is_diagnosed_alone(
    app_for: Any, engine: AsyncEngine, model: FakeMiniMax
) -> None:
    async with app_for(llm=llm(model), storm={"enabled": False}) as (client, services):
        for number in range(1, 5):
            await run(client, services, member(number))
    assert model.calls == 4
    assert all(found.get("cluster_id") is None for found in (await diagnoses(engine)).values())
