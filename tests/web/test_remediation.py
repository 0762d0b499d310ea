"""The pause switch over HTTP: the API and the page take approvers only (signed in as on the approval page, and
allow-listed for the web channel); anyone else changes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.web.test_approvals import AS_ALICE, AS_MALLORY, REMEDIATION

JSON = {"Content-Type": "application/json"}
AUTO = {**REMEDIATION, "mode": "auto"}


async def audit(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT kind, actor, channel FROM audit ORDER BY id"))
        return [(row.kind, row.actor, row.channel) for row in rows]


async def test_only_an_approver_pauses_and_resumes_through_the_api(
    app_for: Callable[..., Any], engine: AsyncEngine
) -> None:
    async with app_for(remediation=AUTO, server={"language": "en"}) as (client, _services):
        anonymous = await client.post("/api/v1/remediation/pause", json={})
        stranger = await client.post("/api/v1/remediation/pause", json={}, headers=AS_MALLORY)
        form_post = await client.post("/api/v1/remediation/pause", data={"x": "1"}, headers=AS_ALICE)
        untouched = (await client.get("/api/v1/remediation")).json()
        paused = await client.post("/api/v1/remediation/pause", content="{}", headers={**AS_ALICE, **JSON})
        again = await client.post("/api/v1/remediation/pause", content="{}", headers={**AS_ALICE, **JSON})
        status = (await client.get("/api/v1/remediation")).json()
        resumed = await client.post("/api/v1/remediation/resume", content="{}", headers={**AS_ALICE, **JSON})
        trail = await audit(engine)
    assert anonymous.status_code == 401 and "WWW-Authenticate" in anonymous.headers
    assert stranger.status_code == 403 and "mallory may not pause" in stranger.json()["message"]
    assert form_post.status_code == 415, "a cross-site form cannot pause"
    assert untouched["paused"] is False and untouched["by"] is None
    assert paused.status_code == 200 and paused.json()["outcome"] == "paused" and paused.json()["paused"]
    assert again.json()["outcome"] == "already"
    assert status["paused"] is True and (status["by"], status["via"], status["mode"]) == (
        "alice",
        "web",
        "auto",
    )
    assert status["since"] is not None
    assert resumed.json()["outcome"] == "resumed" and resumed.json()["paused"] is False
    assert trail == [
        ("switch_refused", "mallory", "web"),
        ("remediation_paused", "alice", "web"),
        ("remediation_resumed", "alice", "web"),
    ]


async def test_the_page_pauses_with_a_form_it_served(app_for: Callable[..., Any]) -> None:
    async with app_for(remediation=AUTO, server={"language": "en"}) as (client, _services):
        unsigned = await client.get("/remediation")
        shown = await client.get("/remediation", headers=AS_ALICE)
        proof = re.search(r'name="proof" value="([^"]+)"', shown.text)
        assert proof is not None
        forged = await client.post("/remediation", data={"proof": "x", "decision": "pause"}, headers=AS_ALICE)
        other = await client.post(
            "/remediation", data={"proof": proof.group(1), "decision": "pause"}, headers=AS_MALLORY
        )
        done = await client.post(
            "/remediation", data={"proof": proof.group(1), "decision": "pause"}, headers=AS_ALICE
        )
        status = (await client.get("/api/v1/remediation")).json()
    assert unsigned.status_code == 401
    assert "automatic remediation: running" in shown.text and 'value="pause"' in shown.text
    assert forged.status_code == 403 and other.status_code == 403
    assert done.status_code == 200 and "automatic remediation: paused by alice via web" in done.text
    assert 'value="resume"' in done.text and status["paused"] is True
