"""Hostile clicks, generated, at the WeCom and Discord callback routes: whatever arrives — sealed and signed as
the platform does, or not — no answer is a 5xx, nothing logs an error, a refusal (4xx) changes nothing, and no
click but the approver's on the proposal's own command approves it.

As in tests/web/test_fuzz.py: one app (with one pending proposal) per test across its examples, seeded and bounded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from aiops.channels.decisions import HASH_PREFIX
from tests.fakes.discord import APPLICATION_ID, BOT_TOKEN, CHANNEL, FakeDiscord
from tests.fakes.wecom import AES_KEY, AGENT_ID, CALLBACK_TOKEN, CORP_ID, SECRET, Callbacks, FakeWeCom
from tests.support.app import proposals
from tests.web.test_fuzz import BIG_INTS, NUMERALS, fuzzing, mostly

ARGV = ("systemctl", "restart", "nginx")
APPROVER_WECOM, APPROVER_DISCORD = "zhangsan", "1300000000000000001"
STORED = ("proposals", "audit", "jobs")
# What can travel in a URL, a header or XML at all (no lone surrogates): the hostile part is what it says.
UTF8 = st.text(st.characters(codec="utf-8"), max_size=20)


@dataclass
class Target:
    client: httpx.AsyncClient
    engine: Any
    proposal: dict[str, Any]
    fake_wecom: FakeWeCom
    fake_discord: FakeDiscord
    caplog: pytest.LogCaptureFixture

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(f"Target(proposal={self.proposal['id']})")

    async def state(self) -> tuple[str, dict[str, int]]:
        counted = ", ".join(f"(SELECT count(*) FROM {table})" for table in STORED)
        async with self.engine.connect() as conn:
            row = (await conn.execute(text(f"SELECT {counted}"))).one()
            state = (
                await conn.execute(
                    text("SELECT state FROM proposals WHERE id = :id"), {"id": self.proposal["id"]}
                )
            ).scalar_one()
        return str(state), dict(zip(STORED, row, strict=True))

    async def answer(self, path: str, approves: bool, **request: Any) -> httpx.Response:
        """The route's answer to `request`, shown not to be a 5xx, to log no error, to change nothing on a 4xx,
        and to approve the proposal only when `approves` (the approver's click on its own command)."""
        before = await self.state()
        self.caplog.clear()
        answer = await self.client.request(url=path, **request)
        assert answer.status_code < 500, answer.text
        failures = [r for r in self.caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not failures, [r.getMessage() for r in failures]
        after = await self.state()
        if 400 <= answer.status_code < 500:
            assert after == before, answer.text
        if before[0] == "pending":
            assert (after[0] == "approved") == (approves and answer.status_code == 200), answer.text
        return answer


@pytest.fixture
async def target(
    app_for: Callable[..., Any],
    fake_wecom: FakeWeCom,
    fake_discord: FakeDiscord,
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[Target]:
    channels = {
        "console": {"enabled": False},
        "wecom": {
            "corp_id": CORP_ID,
            "agent_id": AGENT_ID,
            "corp_secret": SECRET,
            "touser": [APPROVER_WECOM],
            "callback_token": CALLBACK_TOKEN,
            "encoding_aes_key": AES_KEY,
            "base_url": fake_wecom.url,
        },
        "discord": {
            "application_id": APPLICATION_ID,
            "public_key": fake_discord.public_key,
            "bot_token": BOT_TOKEN,
            "channel_id": CHANNEL,
            "api": fake_discord.api,
        },
    }
    approvers = {"wecom": [APPROVER_WECOM], "discord": [APPROVER_DISCORD]}
    remediation = {"approvers": approvers}
    async with app_for(channels=channels, remediation=remediation, server={"language": "en"}) as (
        client,
        services,
    ):
        [item] = await proposals(client, services, [ARGV])
        yield Target(client, services.engine, item, fake_wecom, fake_discord, caplog)


def choices(item: dict[str, Any]) -> dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]]:
    """Each part of a button's payload: what the card carries, and what a hostile one could."""
    return {
        "choice": (
            st.just("approve"),
            st.sampled_from(["reject", "pause", "drop", "", "approve\x00"]) | UTF8,
        ),
        "proposal": (st.just(str(item["id"])), st.one_of(BIG_INTS.map(str), NUMERALS, UTF8)),
        "hash": (st.just(item["argv_hash"][:HASH_PREFIX]), st.one_of(UTF8, st.just("0" * HASH_PREFIX))),
    }


@st.composite
def button(draw: st.DrawFn, item: dict[str, Any], approver: str) -> tuple[str, str, bool]:
    """A button's payload and who pressed it, one part hostile (or none), and whether it should approve."""
    parts = choices(item)
    broken = draw(st.sampled_from([None, *parts]))
    value = {name: draw(hostile if name == broken else right) for name, (right, hostile) in parts.items()}
    user = draw(mostly(st.sampled_from([approver, "mallory"]), UTF8))
    payload = f"aiops:{value['choice']}:{value['proposal']}:{value['hash']}"
    right = {name: draw(right) for name, (right, _) in parts.items()}
    approves = user == approver and value == right
    return payload, user, approves


@fuzzing(80)
@given(data=st.data())
async def test_wecom_callback(target: Target, data: st.DataObject) -> None:
    payload, user, approves = data.draw(button(target.proposal, APPROVER_WECOM))
    sender = Callbacks()
    safe_user = "".join(c for c in user if c not in "]<>&") or "x"  # what fits WeCom's CDATA
    query, body = sender.click(safe_user, payload.replace("]]>", ""), "aiops-1", "code-1")
    how = data.draw(mostly(st.just("sealed"), st.sampled_from(["signature", "garbage", "get"])))
    if how == "signature":
        query = {**query, "msg_signature": data.draw(UTF8)}
    elif how == "garbage":
        body = data.draw(st.binary(max_size=64))
    method = "GET" if how == "get" else "POST"
    approves = approves and how == "sealed" and safe_user == user and "]]>" not in payload
    await target.answer("/callbacks/wecom", approves, method=method, params=query, content=body)


@fuzzing(80)
@given(data=st.data())
async def test_discord_interaction(target: Target, data: st.DataObject) -> None:
    payload, user, approves = data.draw(button(target.proposal, APPROVER_DISCORD))
    headers, raw = target.fake_discord.press(payload, user, "1400000000000000001")
    how = data.draw(mostly(st.just("signed"), st.sampled_from(["signature", "garbage", "json"])))
    if how == "signature":
        headers = {**headers, "X-Signature-Ed25519": data.draw(UTF8.map(lambda t: t.encode().hex()))}
    elif how == "garbage":
        raw = data.draw(st.binary(max_size=64))
    elif how == "json":
        document = json.loads(raw)
        document["data"]["custom_id"] = data.draw(UTF8)
        raw = json.dumps(document).encode()
        headers = target.fake_discord.sign(raw, headers["X-Signature-Timestamp"])
    approves = approves and how == "signed"
    await target.answer("/callbacks/discord", approves, method="POST", headers=headers, content=raw)
