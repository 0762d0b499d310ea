"""Feishu card callbacks: only a request Feishu signed (or, without an encrypt key, carrying the verification token)
is read; a click decides once, for an allow-listed open_id, bound to the command the card showed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import text
from starlette.applications import Starlette

from aiops.channels.feishu import FeishuConfig
from aiops.channels.feishu.inbound import FeishuInbound
from aiops.service import Services
from aiops.store import actions
from aiops.web import callbacks
from tests.fakes.feishu import SECRET, FeishuCallbacks, card_problems
from tests.support.app import proposals

ENCRYPT_KEY = "fake-encrypt-key-0123456789abcdef"
TOKEN = "fake-verification-token-0123456789"
REMEDIATION: dict[str, Any] = {"approvers": {"feishu": ["ou_alice"], "web": ["alice"]}}
ARGV = ("systemctl", "restart", "nginx; rm -rf /")
ENCRYPTED = FeishuConfig(
    app_id="cli_fake", app_secret=SECRET, chat_id="oc_x", encrypt_key=ENCRYPT_KEY, verification_token=TOKEN
)
TOKEN_ONLY = FeishuConfig(app_id="cli_fake", app_secret=SECRET, chat_id="oc_x", verification_token=TOKEN)


@asynccontextmanager
async def callback_client(services: Services, config: FeishuConfig) -> AsyncIterator[httpx.AsyncClient]:
    """The callback route over the running services, given its Feishu config explicitly."""
    app = Starlette(routes=callbacks.routes(lambda services, _: FeishuInbound(config, services.deciders)))
    app.state.services = services
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://aiops") as client:
        yield client


async def propose(client: httpx.AsyncClient, services: Services) -> dict[str, Any]:
    """An incident from tests/data/firing.json, triaged, with one pending proposal; returns the proposal."""
    [item] = await proposals(client, services, [ARGV])
    return item


async def state(services: Services, item: dict[str, Any]) -> tuple[str, int, int]:
    """The proposal's state, the executions queued, and the audit rows about it."""
    async with services.engine.connect() as conn:
        current = await actions.proposal(conn, item["id"])
        queued = await conn.execute(text("SELECT count(*) FROM jobs WHERE kind = 'execute'"))
        audit = await conn.execute(
            text("SELECT count(*) FROM audit WHERE proposal_id = :id"), {"id": item["id"]}
        )
        assert current is not None
        return current["state"], int(queued.scalar_one()), int(audit.scalar_one())


def value(item: dict[str, Any], decision: str = "approve") -> dict[str, Any]:
    return {"proposal": item["id"], "decision": decision, "hash": item["argv_hash"][:16]}


async def click(
    client: httpx.AsyncClient, sender: FeishuCallbacks, open_id: str, clicked: dict[str, Any], **request: Any
) -> httpx.Response:
    body, headers = sender.request(sender.card_action(open_id, clicked), **request)
    return await client.post("/callbacks/feishu", content=body, headers=headers)


async def test_url_verification_is_answered_with_the_challenge(app_for: Callable[..., Any]) -> None:
    async with app_for(remediation=REMEDIATION) as (_, services):
        async with callback_client(services, ENCRYPTED) as feishu:
            sender = FeishuCallbacks(TOKEN, ENCRYPT_KEY)
            body, headers = sender.request(sender.url_verification("challenge-7"), sign=False)
            encrypted = await feishu.post("/callbacks/feishu", content=body, headers=headers)
            wrong = FeishuCallbacks("not-the-token-0123456789", ENCRYPT_KEY)
            body, headers = wrong.request(wrong.url_verification("challenge-8"))
            forged = await feishu.post("/callbacks/feishu", content=body, headers=headers)
        async with callback_client(services, TOKEN_ONLY) as feishu:
            plain = FeishuCallbacks(TOKEN)
            body, headers = plain.request(plain.url_verification("challenge-9"))
            token_mode = await feishu.post("/callbacks/feishu", content=body, headers=headers)
    assert encrypted.status_code == 200 and encrypted.json() == {"challenge": "challenge-7"}
    assert forged.status_code == 401
    assert token_mode.status_code == 200 and token_mode.json() == {"challenge": "challenge-9"}


async def test_an_approvers_click_approves_once_and_answers_with_the_updated_card(
    app_for: Callable[..., Any],
) -> None:
    sender = FeishuCallbacks(TOKEN, ENCRYPT_KEY)
    async with app_for(remediation=REMEDIATION, server={"language": "en"}) as (client, services):
        item = await propose(client, services)
        async with callback_client(services, ENCRYPTED) as feishu:
            first = await click(feishu, sender, "ou_alice", value(item))
            after_first = await state(services, item)
            second = await click(feishu, sender, "ou_alice", value(item))
            after_second = await state(services, item)
    assert first.status_code == 200 and after_first[:2] == ("approved", 1)
    answer = first.json()
    assert answer["toast"]["type"] == "success"
    assert "Approved: it will run once." in answer["toast"]["content"]
    assert "restart-service on web-1 approved" in answer["toast"]["content"]
    card = answer["card"]
    assert card["type"] == "raw" and card_problems(json.dumps(card["data"])) == []
    shown = [e["text"]["content"] for e in card["data"]["body"]["elements"] if e["tag"] == "div"]
    assert any(
        "$ systemctl restart 'nginx; rm -rf /'" in t and "approved, waiting to run" in t for t in shown
    )
    assert "ou_alice via feishu" in " ".join(shown)
    assert all(e["tag"] != "column_set" for e in card["data"]["body"]["elements"]), "no buttons once decided"
    assert after_second[:2] == ("approved", 1), "a second click changes nothing"
    assert second.json()["toast"]["type"] == "info" and "card" not in second.json()
    assert "already approved by ou_alice via feishu" in second.json()["toast"]["content"]


async def test_a_reject_click_rejects(app_for: Callable[..., Any]) -> None:
    sender = FeishuCallbacks(TOKEN, ENCRYPT_KEY)
    async with app_for(remediation=REMEDIATION) as (client, services):
        item = await propose(client, services)
        async with callback_client(services, ENCRYPTED) as feishu:
            answer = await click(feishu, sender, "ou_alice", value(item, "reject"))
        assert (await state(services, item))[:2] == ("rejected", 0)
    assert answer.json()["toast"]["type"] == "success" and answer.json()["card"]["type"] == "raw"
    assert answer.json()["toast"]["content"].startswith("已拒绝：不会执行。"), (
        "in the server's language (zh-CN)"
    )


async def test_someone_not_allow_listed_changes_nothing(app_for: Callable[..., Any]) -> None:
    sender = FeishuCallbacks(TOKEN, ENCRYPT_KEY)
    async with app_for(remediation=REMEDIATION, server={"language": "en"}) as (client, services):
        item = await propose(client, services)
        async with callback_client(services, ENCRYPTED) as feishu:
            answer = await click(feishu, sender, "ou_mallory", value(item))
        assert (await state(services, item))[:2] == ("pending", 0)
    toast = answer.json()["toast"]
    assert answer.status_code == 200 and toast["type"] == "error" and "card" not in answer.json()
    assert "ou_mallory may not approve actions through Feishu" in toast["content"]


async def test_a_wrong_signature_is_refused_before_anything_is_read(app_for: Callable[..., Any]) -> None:
    sender = FeishuCallbacks(TOKEN, ENCRYPT_KEY)
    async with app_for(remediation=REMEDIATION) as (client, services):
        item = await propose(client, services)
        before = await state(services, item)
        async with callback_client(services, ENCRYPTED) as feishu:
            forged = await click(feishu, sender, "ou_alice", value(item), sign_with="guessed-key-0123456789")
            unsigned = await click(feishu, sender, "ou_alice", value(item), sign=False)
            plaintext = await click(feishu, sender, "ou_alice", value(item), encrypt=False)
            body, headers = sender.request(sender.card_action("ou_alice", value(item)))
            tampered = await feishu.post(
                "/callbacks/feishu", content=body.replace(b'"}', b'X"}'), headers=headers
            )
        after = await state(services, item)
    assert [r.status_code for r in (forged, unsigned, plaintext, tampered)] == [401, 401, 401, 401]
    assert "X-Lark-Signature" in forged.json()["error"]
    assert after == before == ("pending", 0, 1), "not approved, nothing queued, nothing audited"


async def test_token_mode_refuses_a_wrong_verification_token(app_for: Callable[..., Any]) -> None:
    async with app_for(remediation=REMEDIATION) as (client, services):
        item = await propose(client, services)
        async with callback_client(services, TOKEN_ONLY) as feishu:
            replayed = await click(
                feishu, FeishuCallbacks("not-the-verification-token"), "ou_alice", value(item)
            )
            untouched = await state(services, item)
            genuine = await click(feishu, FeishuCallbacks(TOKEN), "ou_alice", value(item))
        assert (await state(services, item))[:2] == ("approved", 1)
    assert replayed.status_code == 401 and untouched == ("pending", 0, 1)
    assert genuine.status_code == 200 and genuine.json()["toast"]["type"] == "success"


async def test_a_button_for_another_command_decides_nothing(app_for: Callable[..., Any]) -> None:
    sender = FeishuCallbacks(TOKEN, ENCRYPT_KEY)
    async with app_for(remediation=REMEDIATION, server={"language": "en"}) as (client, services):
        item = await propose(client, services)
        async with callback_client(services, ENCRYPTED) as feishu:
            changed = await click(feishu, sender, "ou_alice", {**value(item), "hash": "0" * 16})
            short = await click(feishu, sender, "ou_alice", {**value(item), "hash": item["argv_hash"][:4]})
            garbled = await click(
                feishu, sender, "ou_alice", {"proposal": "x", "decision": "approve", "hash": "0"}
            )
            missing = await click(feishu, sender, "ou_alice", {**value(item), "proposal": 999999})
        assert (await state(services, item))[:2] == ("pending", 0)
    assert "made for a different command" in changed.json()["toast"]["content"]
    assert "made for a different command" in short.json()["toast"]["content"]
    assert "not understood" in garbled.json()["toast"]["content"]
    assert "does not exist" in missing.json()["toast"]["content"]
    assert {r.json()["toast"]["type"] for r in (changed, short, garbled, missing)} == {"error"}


async def test_without_callback_keys_every_callback_is_refused(app_for: Callable[..., Any]) -> None:
    send_only = FeishuConfig(app_id="cli_fake", app_secret=SECRET, chat_id="oc_x")
    async with app_for(remediation=REMEDIATION) as (client, services):
        item = await propose(client, services)
        async with callback_client(services, send_only) as feishu:
            answer = await click(feishu, FeishuCallbacks(TOKEN), "ou_alice", value(item))
        assert (await state(services, item))[:2] == ("pending", 0)
    assert answer.status_code == 401 and "channels.feishu.encrypt_key" in answer.json()["error"]


async def test_the_card_answered_after_a_click_keeps_its_dashboard_link(app_for: Callable[..., Any]) -> None:
    sender = FeishuCallbacks(TOKEN, ENCRYPT_KEY)
    grafana = {"url": "http://grafana:3000", "public_url": "https://grafana.example.com"}
    async with app_for(remediation=REMEDIATION, grafana=grafana) as (client, services):
        item = await propose(client, services)
        async with callback_client(services, ENCRYPTED) as feishu:
            answer = (await click(feishu, sender, "ou_alice", value(item))).json()
    card = json.dumps(answer["card"]["data"])
    assert "https://grafana.example.com/d/aiops-hosts/hosts?var-instance=web-1%3A9100" in card
    assert "http://grafana:3000" not in card
