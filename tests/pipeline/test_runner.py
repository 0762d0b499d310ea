"""The pipeline for one delivery: a failing stage is recorded on the incident and the rest goes on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.i18n import english
from aiops.store import incidents
from tests.conftest import DATA
from tests.fakes.prometheus import FakePrometheus
from tests.support.app import AUTH


async def post(client: Any, name: str) -> int:
    answer = await client.post("/webhook/alertmanager", content=(DATA / name).read_bytes(), headers=AUTH)
    return int(answer.json()["delivery"])


async def test_prometheus_down_is_recorded_and_the_incident_is_still_announced(
    app_for: Any, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    async with app_for(prometheus={"url": "http://127.0.0.1:9"}, server={"language": "en"}) as (
        client,
        services,
    ):
        await services.pipeline.run(await post(client, "firing.json"))
        async with engine.connect() as conn:
            detail = await incidents.detail(conn, 1)
    assert detail is not None
    [triage] = detail["triages"]
    [error] = triage["errors"]
    assert error["stage"] == "evidence:prometheus" and "is unreachable" in english(error["message"])
    assert triage["diagnosis"]["source"] == "offline"
    assert any(event["kind"] == "stage_failed" for event in detail["timeline"])
    assert [(n["purpose"], n["state"]) for n in detail["notifications"]] == [("opened", "sent")]
    printed = capsys.readouterr().out
    assert "==== [warning] Host out of disk space (instance web-1:9100) ====" in printed
    assert "Offline diagnosis — not from an LLM" in printed


async def test_evidence_reaches_the_diagnosis_and_the_announcement(
    app_for: Any, engine: AsyncEngine, fake_prometheus: FakePrometheus, capsys: pytest.CaptureFixture[str]
) -> None:
    async with app_for(prometheus={"url": fake_prometheus.url}, server={"language": "en"}) as (
        client,
        services,
    ):
        triage = await services.pipeline.run(await post(client, "firing.json"))
        await services.pipeline.run(await post(client, "resolved.json"))
        async with engine.connect() as conn:
            detail = await incidents.detail(conn, 1)
    assert triage is not None and triage.errors == ()
    assert "highest value 95, last 95, rising" in triage.diagnosis.summary
    assert detail is not None and detail["status"] == "resolved"
    assert [n["purpose"] for n in detail["notifications"]] == ["opened", "resolved"]
    printed = capsys.readouterr().out
    assert "min 10, max 95, last 95, rising" in printed
    assert "==== [RESOLVED] Host out of disk space" in printed


async def test_rerunning_a_delivery_announces_it_once(
    app_for: Any, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    async with app_for() as (client, services):
        delivery = await post(client, "firing.json")
        await services.pipeline.run(delivery)
        await services.pipeline.run(delivery)
        async with engine.connect() as conn:
            detail = await incidents.detail(conn, 1)
    assert detail is not None and len(detail["notifications"]) == 1 and len(detail["triages"]) == 1
    assert capsys.readouterr().out.count("==== [warning]") == 1


async def test_a_severity_longer_than_the_store_keeps_is_cut_not_a_failing_triage(
    app_for: Any, engine: AsyncEngine
) -> None:
    payload = json.loads((DATA / "firing.json").read_text())
    payload["commonLabels"]["severity"] = "s" * 100
    async with app_for() as (client, services):
        answer = await client.post("/webhook/alertmanager", content=json.dumps(payload), headers=AUTH)
        assert answer.status_code == 200
        await services.pipeline.run(int(answer.json()["delivery"]))
        async with engine.connect() as conn:
            detail = await incidents.detail(conn, 1)
    assert detail is not None and detail["severity"] == "s" * 64
    assert [n["state"] for n in detail["notifications"]] == ["sent"]
