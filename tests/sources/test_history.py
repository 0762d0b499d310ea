"""Past incidents as evidence: the same alert on the same target, newest first, with what was concluded."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import DATA
from tests.support.app import AUTH

FIRING: dict[str, Any] = json.loads((DATA / "firing.json").read_text())
RESOLVED: dict[str, Any] = json.loads((DATA / "resolved.json").read_text())


def episode(starts: str, instance: str, status: str = "firing") -> str:
    body = json.loads(json.dumps(FIRING if status == "firing" else RESOLVED))
    body["groupKey"] = f"disk-{instance}"
    for alert in body["alerts"]:
        alert["startsAt"] = starts
        alert["labels"]["instance"] = instance
    return json.dumps(body)


async def run(client: Any, services: Any, body: str) -> Any:
    answer = await client.post("/webhook/alertmanager", content=body, headers=AUTH)
    return await services.pipeline.run(answer.json()["delivery"])


async def test_past_incidents_of_the_same_alert_and_target(app_for: Any, engine: AsyncEngine) -> None:
    async with app_for(history={"limit": 2}) as (client, services):
        for day, instance in (
            ("20", "web-1:9100"),
            ("21", "db-1:9100"),
            ("22", "web-1:9100"),
            ("23", "web-1:9100"),
        ):
            starts = f"2026-11-{day}T03:00:00Z"
            await run(client, services, episode(starts, instance))
            await run(client, services, episode(starts, instance, "resolved"))
        triage = await run(client, services, episode("2026-11-24T03:00:00Z", "web-1:9100"))
    [history] = [item for item in triage.evidence if item.source == "history"]
    assert str(history.title) == "past HostOutOfDiskSpace incidents on instance=web-1:9100"
    assert [str(line).split(" ")[0] for line in history.lines] == ["#4", "#3"], (
        "newest first, db-1 left out, limit 2"
    )
    assert "resolved after" in str(history.lines[0])


async def test_no_history_is_said_plainly(app_for: Any, engine: AsyncEngine) -> None:
    async with app_for(server={"language": "en"}) as (client, services):
        triage = await run(client, services, episode("2026-11-24T03:00:00Z", "web-1:9100"))
    [history] = [item for item in triage.evidence if item.source == "history"]
    assert history.lines == () and history.error is None
