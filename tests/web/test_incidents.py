"""The incidents API and pages: filters, paging, errors, and who may see them."""

from __future__ import annotations

import base64
import json
from typing import Any

from aiops.passwords import hash_password
from tests.conftest import DATA
from tests.support.app import AUTH

FIRING = json.loads((DATA / "firing.json").read_text())


async def open_incidents(client: Any, services: Any, count: int) -> None:
    for n in range(count):
        body = {**FIRING, "groupKey": f"group-{n}"}
        answer = await client.post("/webhook/alertmanager", content=json.dumps(body), headers=AUTH)
        await services.pipeline.run(answer.json()["delivery"])


async def test_list_filter_and_page(app_for: Any) -> None:
    async with app_for() as (client, services):
        await open_incidents(client, services, 3)
        resolved = json.loads((DATA / "resolved.json").read_text())
        answer = await client.post(
            "/webhook/alertmanager", content=json.dumps({**resolved, "groupKey": "group-0"}), headers=AUTH
        )
        await services.pipeline.run(answer.json()["delivery"])
        page = (await client.get("/api/v1/incidents?limit=2")).json()
        rest = (await client.get(page["next"])).json()
        open_only = (await client.get("/api/v1/incidents?status=open")).json()
    assert [i["id"] for i in page["incidents"]] == [3, 2]
    assert [i["id"] for i in rest["incidents"]] == [1] and rest["next"] is None
    assert [i["id"] for i in open_only["incidents"]] == [3, 2]
    assert page["incidents"][0]["alert_count"] == 1


async def test_detail_has_everything(app_for: Any) -> None:
    async with app_for() as (client, services):
        await open_incidents(client, services, 1)
        detail = (await client.get("/api/v1/incidents/1")).json()
        missing = await client.get("/api/v1/incidents/99")
    assert {"alerts", "triages", "notifications", "timeline"} <= detail.keys()
    assert detail["alerts"][0]["name"] == "HostOutOfDiskSpace"
    assert [event["kind"] for event in detail["timeline"]][:1] == ["opened"]
    assert missing.status_code == 404 and missing.json() == {"error": "no incident 99"}


async def test_a_message_is_its_key_its_values_and_its_text_in_the_servers_language(app_for: Any) -> None:
    async with app_for() as (client, services):
        await open_incidents(client, services, 1)
        detail = (await client.get("/api/v1/incidents/1")).json()
    reason = detail["triages"][0]["runbook"]["reason"]
    assert (reason["key"], reason["params"]["alert"]) == ("runbook_none_url", "HostOutOfDiskSpace")
    assert reason["text"].startswith("没有处置手册覆盖 HostOutOfDiskSpace：runbook_url")  # zh-CN, the default
    assert reason["english"].startswith("no runbook for HostOutOfDiskSpace: runbook_url")
    opened = detail["timeline"][0]["message"]
    assert (opened["key"], opened["text"]) == ("event_opened", "由 HostOutOfDiskSpace 触发")


async def test_bad_queries_name_the_parameter(app_for: Any) -> None:
    async with app_for() as (client, _):
        assert (await client.get("/api/v1/incidents?status=closed")).json()["error"].startswith("status:")
        assert (await client.get("/api/v1/incidents?limit=0")).json()["error"].startswith("limit:")
        assert (await client.get("/api/v1/incidents?before=x")).status_code == 400


async def test_pages_render(app_for: Any) -> None:
    async with app_for(server={"language": "en"}) as (client, services):
        empty = await client.get("/")
        await open_incidents(client, services, 1)
        listing = await client.get("/")
        page = await client.get("/incidents/1")
        missing = await client.get("/incidents/7")
    assert "No incidents yet" in empty.text
    assert 'href="/incidents/1"' in listing.text
    assert "HostOutOfDiskSpace" in page.text and "Offline diagnosis" in page.text
    assert missing.status_code == 404


async def test_label_values_are_escaped_in_pages(app_for: Any) -> None:
    body = json.loads(json.dumps(FIRING))
    body["alerts"][0]["labels"]["instance"] = "<script>alert(1)</script>"
    async with app_for() as (client, services):
        answer = await client.post("/webhook/alertmanager", content=json.dumps(body), headers=AUTH)
        await services.pipeline.run(answer.json()["delivery"])
        page = await client.get("/incidents/1")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text


async def test_viewers_need_credentials_off_loopback(app_for: Any) -> None:
    viewer = {"username": "oncall", "password_hash": hash_password("correct horse")}
    server = {"listen": "0.0.0.0:18789", "viewers": [viewer]}
    good = "Basic " + base64.b64encode(b"oncall:correct horse").decode()
    bad = "Basic " + base64.b64encode(b"oncall:wrong").decode()
    async with app_for(server=server) as (client, _):
        for path in ("/", "/api/v1/incidents", "/api/v1/incidents/1", "/incidents/1"):
            assert (await client.get(path)).status_code == 401, path
            assert (await client.get(path, headers={"Authorization": bad})).status_code == 401, path
        assert (await client.get("/api/v1/incidents", headers={"Authorization": good})).status_code == 200
        assert (await client.get("/healthz")).status_code == 200


async def test_health_readiness_metrics_and_schema(app_for: Any) -> None:
    async with app_for() as (client, services):
        await open_incidents(client, services, 1)
        ready = (await client.get("/readyz")).json()
        metrics = (await client.get("/metrics")).text
        schema = (await client.get("/openapi.json")).json()
    assert ready["store"] == "ok" and ready["queue"]["pending"] == 1, "workers are off: the job waits"
    for name in (
        "aiops_webhook_requests_total",
        "aiops_alerts_received_total",
        "aiops_queue_jobs",
        "aiops_queue_oldest_age_seconds",
        "aiops_stage_duration_seconds_bucket",
        'aiops_incidents{status="open"} 1.0',
    ):
        assert name in metrics, name
    assert "/webhook/alertmanager" in schema["paths"]
    assert "groupKey" in schema["components"]["schemas"]["WebhookPayload"]["properties"]


async def test_ids_no_incident_can_have_are_not_found(app_for: Any) -> None:
    """Past 64 bits the store cannot even be asked; past 4300 digits int() refuses: both are simply not found."""
    async with app_for() as (client, services):
        await open_incidents(client, services, 1)
        for incident in (str(2**63), "9" * 20, "9" * 5000, "²", "%D9%A3"):
            api = await client.get(f"/api/v1/incidents/{incident}")
            page = await client.get(f"/incidents/{incident}")
            assert (api.status_code, page.status_code) == (404, 404), incident
            assert api.json()["error"].startswith("no incident ")
        largest = await client.get(f"/api/v1/incidents/{2**63 - 1}")
    assert largest.status_code == 404 and largest.json() == {"error": f"no incident {2**63 - 1}"}


async def test_before_past_64_bits_is_refused_by_name(app_for: Any) -> None:
    async with app_for() as (client, _):
        for before in (str(2**63), "9" * 5000):
            answer = await client.get("/api/v1/incidents", params={"before": before})
            assert answer.status_code == 400, before
            assert answer.json()["error"] == "before: must be between 0 and 9223372036854775807"
        page = await client.get("/", params={"before": str(2**64)})
    assert (
        page.status_code == 400 and "before 必须在 0 到 9223372036854775807 之间" in page.text
    )  # zh-CN, the default


async def test_only_ascii_digits_are_numbers(app_for: Any) -> None:
    """str.isdigit() takes '²' (which int() refuses) and '٣' (which int() reads as 3); neither is a number here."""
    async with app_for() as (client, _):
        for name in ("limit", "before"):
            for value in ("²", "٣", "１０"):
                answer = await client.get("/api/v1/incidents", params={name: value})
                assert answer.status_code == 400, (name, value)
                assert answer.json()["error"] == f"{name}: must be a whole number, not {value!r}"
