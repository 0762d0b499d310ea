"""The Pause button on Feishu and DingTalk cards (`remediation.mode: auto`): a click from an allow-listed approver
pauses automatic remediation, through the fake platforms and the real SDKs; anyone else's changes nothing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.actions import guardrails
from aiops.channels.feishu.card import Cards
from tests.channels.test_dingtalk import click as dingtalk_click
from tests.channels.test_dingtalk import connected, notice
from tests.channels.test_dingtalk import propose as dingtalk_propose
from tests.channels.test_feishu_longconn import listening, push
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.feishu import FakeFeishu, FeishuCallbacks, card_problems
from tests.web.test_feishu_callbacks import ENCRYPT_KEY, ENCRYPTED, TOKEN, callback_client, propose
from tests.web.test_feishu_callbacks import click as feishu_click
from tests.web.test_remediation import audit

AUTO: dict[str, Any] = {"mode": "auto", "approvers": {"feishu": ["ou_alice"], "dingtalk": ["staff-1"]}}
EN = {"language": "en"}
LONG = FeishuCallbacks("unused-in-long-connection-mode")


@pytest.fixture
def fake(fake_dingtalk: FakeDingTalk) -> FakeDingTalk:
    return fake_dingtalk


async def current_card(services: Any, item: dict[str, Any]) -> str | None:
    """The Feishu card of `item`'s incident as a click on it is answered with."""
    announcement = await services.pipeline.card(item["incident_id"], item["delivery_id"])
    return None if announcement is None else Cards(services.templates).announcement(announcement)


def pause_buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for element in card["body"]["elements"]:
        for behaviour in element.get("behaviors", []):
            if behaviour.get("value", {}).get("decision") == "pause":
                found.append(element)
    return found


async def test_an_approvers_pause_click_on_a_feishu_card_pauses(
    app_for: Callable[..., Any], engine: AsyncEngine
) -> None:
    sender = FeishuCallbacks(TOKEN, ENCRYPT_KEY)
    async with app_for(remediation=AUTO, server=EN) as (client, services):
        item = await propose(client, services)
        card = await current_card(services, item)
        assert card is not None
        [button] = pause_buttons(json.loads(card))
        value = button["behaviors"][0]["value"]
        async with callback_client(services, ENCRYPTED) as feishu:
            stranger = await feishu_click(feishu, sender, "ou_mallory", value)
            still = await guardrails.status(services.engine)
            answer = await feishu_click(feishu, sender, "ou_alice", value)
        now = await guardrails.status(services.engine)
        trail = await audit(engine)
    assert card_problems(card) == [] and "confirm" in button
    assert value == {"decision": "pause", "incident": item["incident_id"]}
    assert stranger.json()["toast"]["type"] == "error" and not still.paused
    assert "ou_mallory may not pause" in stranger.json()["toast"]["content"]
    assert answer.json()["toast"]["type"] == "success" and "paused" in answer.json()["toast"]["content"]
    assert now.paused and (now.actor, now.channel) == ("ou_alice", "feishu")
    assert ("remediation_paused", "ou_alice", "feishu") in trail


async def test_a_feishu_card_has_no_pause_button_unless_mode_is_auto(app_for: Callable[..., Any]) -> None:
    async with app_for(remediation={"approvers": {"feishu": ["ou_alice"]}}) as (client, services):
        item = await propose(client, services)
        card = await current_card(services, item)
    assert card is not None and pause_buttons(json.loads(card)) == []


async def test_an_approvers_pause_click_on_a_dingtalk_card_pauses(
    app_for: Callable[..., Any], fake: FakeDingTalk, engine: AsyncEngine
) -> None:
    async with app_for(remediation=AUTO, server=EN) as (client, services):
        dingtalk, callbacks = await connected(fake, services)
        try:
            opened, item = await dingtalk_propose(client, services)
            pausable = dataclasses.replace(opened, pause_url="http://aiops/remediation")
            handle = await dingtalk.send(dingtalk.render(pausable))
            assert handle is not None
            params = {"decision": "pause", "incident_id": str(item["incident_id"])}
            stranger = await dingtalk_click(fake, handle, "staff-2", "pause", 0, params=params)
            still = await guardrails.status(services.engine)
            answer = await dingtalk_click(fake, handle, "staff-1", "pause", 0, params=params)
            now = await guardrails.status(services.engine)
        finally:
            await callbacks.stop()
        trail = await audit(engine)
    assert fake.cards[handle]["params"]["pause_open"] == "true"
    assert "staff-2 may not pause" in notice(stranger, "staff-2") and not still.paused
    assert "Automatic remediation is paused" in notice(answer, "staff-1")
    assert now.paused and (now.actor, now.channel) == ("staff-1", "dingtalk")
    assert ("remediation_paused", "staff-1", "dingtalk") in trail


async def test_a_pause_click_over_feishus_long_connection_pauses(
    app_for: Callable[..., Any], feishu: FakeFeishu
) -> None:
    async with listening(app_for, feishu) as (services, item, gateway):
        pause = {"decision": "pause", "incident": item["incident_id"]}
        stranger = await push(gateway, LONG.card_action("ou_mallory", pause))
        still = await guardrails.status(services.engine)
        answer = await push(gateway, LONG.card_action("ou_alice", pause))
        now = await guardrails.status(services.engine)
    assert stranger.body is not None and stranger.body["toast"]["type"] == "error" and not still.paused
    assert answer.body is not None and answer.body["toast"]["type"] == "success"
    assert now.paused and (now.actor, now.channel) == ("ou_alice", "feishu")
