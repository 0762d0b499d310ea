"""The approval page: a GET only shows, a POST from the page decides once, and only for an allow-listed approver."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.actions.links import PATH, form_proof, make_token, signing_key
from aiops.passwords import hash_password
from aiops.service import Services
from aiops.store import actions
from aiops.web import approvals
from aiops.web.app import create_app
from tests.support.app import proposals, settings_for

ALICE = {"username": "alice", "password_hash": hash_password("alice-password")}
MALLORY = {"username": "mallory", "password_hash": hash_password("mallory-password")}
REMEDIATION: dict[str, Any] = {"web_users": [ALICE, MALLORY], "approvers": {"web": ["alice"]}}
PROXIED: dict[str, Any] = {"trusted_user_header": "X-Forwarded-User", "approvers": {"web": ["alice"]}}
ARGV = ("systemctl", "restart", "nginx")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


AS_ALICE = basic("alice", "alice-password")
AS_MALLORY = basic("mallory", "mallory-password")


@asynccontextmanager
async def approval_app(
    engine: AsyncEngine, database_url: str, remediation: dict[str, Any], language: str = "en"
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The app in-process; adds the approval routes while aiops/web/app.py does not have them yet."""
    settings = settings_for(database_url, remediation=remediation, server={"language": language})
    app = create_app(settings, engine=engine, workers=False)
    if not any(getattr(route, "path", None) == PATH for route in app.routes):
        app.router.routes.extend(approvals.routes())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://aiops") as client:
            yield client, app.state.services


async def propose(
    client: httpx.AsyncClient, services: Services, argv: tuple[str, ...] = ARGV
) -> dict[str, Any]:
    """An incident from tests/data/firing.json, triaged, with one pending proposal; returns the proposal."""
    [item] = await proposals(client, services, [argv])
    return item


async def link(services: Services, item: dict[str, Any], **changes: Any) -> str:
    key = await signing_key(services.engine, services.settings.remediation)
    claims = {"argv_hash": item["argv_hash"], "expires_at": item["expires_at"].timestamp(), **changes}
    return make_token(key, item["id"], claims["argv_hash"], claims["expires_at"])


async def proof_for(services: Services, token: str, user: str) -> str:
    return form_proof(await signing_key(services.engine, services.settings.remediation), token, user)


def proof_on(page: httpx.Response) -> str:
    found = re.search(r'name="proof" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


async def state(services: Services, item: dict[str, Any]) -> tuple[str, int]:
    """The proposal's state and how many executions are queued."""
    async with services.engine.connect() as conn:
        current = await actions.proposal(conn, item["id"])
        queued = await conn.execute(text("SELECT count(*) FROM jobs WHERE kind = 'execute'"))
        assert current is not None
        return current["state"], int(queued.scalar_one())


async def test_get_shows_the_exact_command_and_changes_nothing(
    engine: AsyncEngine, database_url: str
) -> None:
    async with approval_app(engine, database_url, REMEDIATION) as (client, services):
        item = await propose(client, services, ("systemctl", "restart", "nginx; rm -rf /"))
        token = await link(services, item)
        page = await client.get(f"/approvals/{token}", headers=AS_ALICE)
        again = await client.get(f"/approvals/{token}", headers=AS_ALICE)
        assert await state(services, item) == ("pending", 0)
    assert page.status_code == again.status_code == 200
    assert "systemctl restart &#39;nginx; rm -rf /&#39;" in page.text, "quoted as a shell would need it"
    assert "<code>nginx; rm -rf /</code>" in page.text
    assert (
        "web-1" in page.text
        and "nginx stopped answering" in page.text
        and "waiting for an approval" in page.text
    )
    assert f'href="/incidents/{item["incident_id"]}"' in page.text
    assert 'value="approve"' in page.text and 'value="reject"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


async def test_approve_once_enqueues_one_execution(engine: AsyncEngine, database_url: str) -> None:
    async with approval_app(engine, database_url, REMEDIATION) as (client, services):
        item = await propose(client, services)
        token = await link(services, item)
        proof = proof_on(await client.get(f"/approvals/{token}", headers=AS_ALICE))
        form = {"decision": "approve", "proof": proof}
        first = await client.post(f"/approvals/{token}", data=form, headers=AS_ALICE)
        assert await state(services, item) == ("approved", 1)
        second = await client.post(f"/approvals/{token}", data=form, headers=AS_ALICE)
        assert await state(services, item) == ("approved", 1)
        settled = await client.get(f"/approvals/{token}", headers=AS_ALICE)
    assert first.status_code == 200 and "Approved: it will run once." in first.text
    assert "restart-service on web-1 approved" in first.text
    assert second.status_code == 200 and "already approved by alice via web; it runs once" in second.text
    assert "already been decided" in settled.text and 'name="proof"' not in settled.text


async def test_wrong_or_missing_password_is_asked_again(engine: AsyncEngine, database_url: str) -> None:
    async with approval_app(engine, database_url, REMEDIATION) as (client, services):
        item = await propose(client, services)
        token = await link(services, item)
        proof = await proof_for(services, token, "alice")
        wrong = basic("alice", "guess")
        answers = [
            await client.get(f"/approvals/{token}"),
            await client.get(f"/approvals/{token}", headers=wrong),
            await client.get(f"/approvals/{token}", headers=basic("张三", "guess")),
            await client.post(
                f"/approvals/{token}", data={"decision": "approve", "proof": proof}, headers=wrong
            ),
            await client.post(f"/approvals/{token}", data={"decision": "approve", "proof": proof}),
        ]
        assert await state(services, item) == ("pending", 0)
    for answer in answers:
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'Basic realm="aiops approvals"'
        assert "nginx" not in answer.text


async def test_a_web_user_who_is_not_an_approver_is_refused(engine: AsyncEngine, database_url: str) -> None:
    async with approval_app(engine, database_url, REMEDIATION) as (client, services):
        item = await propose(client, services)
        token = await link(services, item)
        page = await client.get(f"/approvals/{token}", headers=AS_MALLORY)
        form = {"decision": "approve", "proof": await proof_for(services, token, "mallory")}
        answer = await client.post(f"/approvals/{token}", data=form, headers=AS_MALLORY)
        assert await state(services, item) == ("pending", 0)
    assert "mallory is not an approver" in page.text and 'name="proof"' not in page.text
    assert answer.status_code == 409 and "mallory may not approve via web" in answer.text


async def test_forged_and_expired_links_are_not_valid(engine: AsyncEngine, database_url: str) -> None:
    async with approval_app(engine, database_url, REMEDIATION) as (client, services):
        item = await propose(client, services)
        token = await link(services, item)
        middle = len(token) // 2
        forged = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
        expired = await link(services, item, expires_at=time.time() - 1)
        proof = await proof_for(services, forged, "alice")
        answers = {
            "forged": await client.get(f"/approvals/{forged}", headers=AS_ALICE),
            "forged post": await client.post(
                f"/approvals/{forged}", data={"decision": "approve", "proof": proof}, headers=AS_ALICE
            ),
            "expired": await client.get(f"/approvals/{expired}", headers=AS_ALICE),
            "garbled": await client.get("/approvals/not-a-token", headers=AS_ALICE),
        }
        assert await state(services, item) == ("pending", 0)
    for name, answer in answers.items():
        assert answer.status_code == 404, name
        assert "This approval link is not valid" in answer.text, name
        assert "nginx" not in answer.text and "web-1" not in answer.text, name
    assert "it has expired" in answers["expired"].text
    assert "not signed by this service" in answers["forged"].text


async def test_a_link_for_another_argv_is_refused(engine: AsyncEngine, database_url: str) -> None:
    async with approval_app(engine, database_url, REMEDIATION) as (client, services):
        item = await propose(client, services)
        other = actions.argv_hash("web-1", ["systemctl", "stop", "nginx"])
        token = await link(services, item, argv_hash=other)
        page = await client.get(f"/approvals/{token}", headers=AS_ALICE)
        form = {"decision": "approve", "proof": await proof_for(services, token, "alice")}
        answer = await client.post(f"/approvals/{token}", data=form, headers=AS_ALICE)
        assert await state(services, item) == ("pending", 0)
    assert "made for a different command" in page.text and 'name="proof"' not in page.text
    assert answer.status_code == 409 and "this link was made for another command" in answer.text


async def test_a_post_without_the_pages_proof_is_refused(engine: AsyncEngine, database_url: str) -> None:
    async with approval_app(engine, database_url, REMEDIATION) as (client, services):
        item = await propose(client, services)
        token = await link(services, item)
        someone_elses = await proof_for(services, token, "mallory")
        answers = [
            await client.post(f"/approvals/{token}", data={"decision": "approve"}, headers=AS_ALICE),
            await client.post(
                f"/approvals/{token}", data={"decision": "approve", "proof": someone_elses}, headers=AS_ALICE
            ),
            await client.post(
                f"/approvals/{token}",
                json={"decision": "approve", "proof": await proof_for(services, token, "alice")},
                headers=AS_ALICE,
            ),
        ]
        assert await state(services, item) == ("pending", 0)
    assert [answer.status_code for answer in answers] == [403, 403, 403]


async def test_reject_is_final(engine: AsyncEngine, database_url: str) -> None:
    async with approval_app(engine, database_url, REMEDIATION) as (client, services):
        item = await propose(client, services)
        token = await link(services, item)
        proof = await proof_for(services, token, "alice")
        rejected = await client.post(
            f"/approvals/{token}", data={"decision": "reject", "proof": proof}, headers=AS_ALICE
        )
        approved = await client.post(
            f"/approvals/{token}", data={"decision": "approve", "proof": proof}, headers=AS_ALICE
        )
        unchosen = await client.post(f"/approvals/{token}", data={"proof": proof}, headers=AS_ALICE)
        assert await state(services, item) == ("rejected", 0)
    assert rejected.status_code == 200 and "Rejected: it will not run." in rejected.text
    assert approved.status_code == 409 and "rejected by alice via web; a rejection is final" in approved.text
    assert unchosen.status_code == 400


async def test_trusted_header_names_the_approver(engine: AsyncEngine, database_url: str) -> None:
    async with approval_app(engine, database_url, PROXIED) as (client, services):
        item = await propose(client, services)
        token = await link(services, item)
        missing = await client.get(f"/approvals/{token}", headers=AS_ALICE)
        page = await client.get(f"/approvals/{token}", headers={"X-Forwarded-User": "alice"})
        form = {"decision": "approve", "proof": proof_on(page)}
        answer = await client.post(f"/approvals/{token}", data=form, headers={"X-Forwarded-User": "alice"})
        assert await state(services, item) == ("approved", 1)
    assert missing.status_code == 401 and "www-authenticate" not in missing.headers
    assert "X-Forwarded-User" in missing.text
    assert page.status_code == 200 and "Signed in as alice" in page.text
    assert answer.status_code == 200 and "approved" in answer.text


async def test_trusted_header_is_ignored_unless_configured(engine: AsyncEngine, database_url: str) -> None:
    async with approval_app(engine, database_url, REMEDIATION) as (client, services):
        item = await propose(client, services)
        token = await link(services, item)
        proof = await proof_for(services, token, "alice")
        headers = {"X-Forwarded-User": "alice"}
        page = await client.get(f"/approvals/{token}", headers=headers)
        answer = await client.post(
            f"/approvals/{token}", data={"decision": "approve", "proof": proof}, headers=headers
        )
        assert await state(services, item) == ("pending", 0)
    assert page.status_code == answer.status_code == 401


async def test_the_page_speaks_chinese(engine: AsyncEngine, database_url: str) -> None:
    async with approval_app(engine, database_url, REMEDIATION, "zh-CN") as (client, services):
        item = await propose(client, services)
        page = await client.get(f"/approvals/{await link(services, item)}", headers=AS_ALICE)
        invalid = await client.get("/approvals/AAAA", headers=AS_ALICE)
    assert "是否批准此操作" in page.text and "批准并执行" in page.text and "等待审批" in page.text
    assert "此审批链接无效（链接不完整或已损坏）" in invalid.text


def gauge(metrics: str, name: str) -> float:
    [value] = [float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name + " ")]
    return value


async def test_metrics_count_the_approvals_still_waiting(engine: AsyncEngine, database_url: str) -> None:
    async with approval_app(engine, database_url, REMEDIATION) as (client, services):
        before = (await client.get("/metrics")).text
        item = await propose(client, services)
        async with services.engine.begin() as conn:
            await conn.execute(
                text("UPDATE proposals SET created_at = :at WHERE id = :id"),
                {"at": time.time() - 600, "id": item["id"]},
            )
        waiting = (await client.get("/metrics")).text
        token = await link(services, item)
        proof = proof_on(await client.get(f"/approvals/{token}", headers=AS_ALICE))
        await client.post(
            f"/approvals/{token}", data={"decision": "reject", "proof": proof}, headers=AS_ALICE
        )
        decided = (await client.get("/metrics")).text
    assert gauge(before, "aiops_approvals_pending") == 0
    assert gauge(waiting, "aiops_approvals_pending") == 1
    assert 600 <= gauge(waiting, "aiops_approvals_oldest_pending_age_seconds") < 700
    assert gauge(decided, "aiops_approvals_pending") == 0
    assert gauge(decided, "aiops_approvals_oldest_pending_age_seconds") == 0
