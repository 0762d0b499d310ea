"""The robots behind the real pipeline and outbox: an alert storm reaches a DingTalk group within its rate limit."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.channels.dingtalk_webhook import DingTalkWebhookChannel, DingTalkWebhookConfig
from aiops.metrics import Metrics
from aiops.pipeline.outbox import Outbox
from aiops.service import Services
from aiops.templating import build_environment
from tests.channels.conftest import SECRET
from tests.conftest import DATA
from tests.fakes.minimax import FakeMiniMax, Reply
from tests.fakes.robots import FakeDingTalkRobot
from tests.llm.conftest import GOOD, llm
from tests.pipeline.test_outbox import Clock, drain, post
from tests.support.app import AUTH


@asynccontextmanager
async def robot_app(
    app_for: Any,
    engine: AsyncEngine,
    robot: FakeDingTalkRobot,
    clock: Clock,
    http: httpx.AsyncClient,
    **sections: Any,
) -> AsyncIterator[tuple[Any, Services, Outbox]]:
    """The app announcing on one DingTalk robot (the fake), with an outbox on the simulated clock."""
    config = DingTalkWebhookConfig(name="chat", url=robot.url, secret=SecretStr(SECRET))
    channel = DingTalkWebhookChannel(config, build_environment("en"), http, clock=clock)
    async with app_for(server={"language": "en"}, **sections) as (client, services):
        services.pipeline.stages = dataclasses.replace(services.pipeline.stages, channels=[channel])
        yield client, services, Outbox(engine, {"chat": channel}, Metrics(), "http://aiops", clock)


@pytest.fixture
def clock() -> Clock:
    """The outbox tests' simulated clock, shared by the outbox, the channel's signatures and the fake robot."""
    return Clock()


async def test_a_storm_reaches_the_group_as_messages_and_a_digest_without_throttling(
    app_for: Any,
    engine: AsyncEngine,
    dingtalk_robot: FakeDingTalkRobot,
    clock: Clock,
    http: httpx.AsyncClient,
) -> None:
    async with robot_app(app_for, engine, dingtalk_robot, clock, http) as (client, services, outbox):
        for number in range(1, 6):
            await post(client, number)
        await drain(services, outbox, clock)
        for number in range(6, 41):
            await post(client, number)
        await drain(services, outbox, clock)
    assert dingtalk_robot.answers and all(answer["errcode"] == 0 for answer in dingtalk_robot.answers)
    texts = [message["markdown"]["text"] for message in dingtalk_robot.messages]
    assert any(text.startswith("### Alert storm") for text in texts)
    assert texts[0].startswith("### 🟠 \\[warning\\] Host out of disk space (instance web-1:9100)")
    assert len(texts) < 40  # the storm was folded, not posted one message per incident


def payload(group: int, alerts: int = 5) -> dict[str, Any]:
    """firing.json as a group of `alerts` alerts (one per mount point), distinct per group."""
    body = json.loads((DATA / "firing.json").read_text())
    template = body["alerts"][0]
    body["groupKey"] += f"-storm-{group}"
    body["alerts"] = [
        {
            **template,
            "labels": {**template["labels"], "mountpoint": f"/data{n}"},
            "fingerprint": f"{group:08x}{n:08x}",
        }
        for n in range(alerts)
    ]
    return body


async def test_a_storm_of_500_alerts_in_100_groups_within_a_minute(
    app_for: Any,
    engine: AsyncEngine,
    dingtalk_robot: FakeDingTalkRobot,
    clock: Clock,
    http: httpx.AsyncClient,
) -> None:
    start = clock.now
    async with robot_app(app_for, engine, dingtalk_robot, clock, http) as (client, services, outbox):
        for group in range(100):
            answer = await client.post(
                "/webhook/alertmanager", content=json.dumps(payload(group)), headers=AUTH
            )
            assert answer.status_code == 200
            if group % 10 == 9:  # Alertmanager keeps posting while aiops delivers
                await drain(services, outbox, clock)
            clock.now = max(clock.now, start + 0.55 * (group + 1))
        await drain(services, outbox, clock)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT incident_id, state FROM notifications"))).all()
            incidents = (await conn.execute(text("SELECT count(*) FROM incidents"))).scalar_one()
    arrivals = dingtalk_robot.arrivals
    assert all(answer["errcode"] == 0 for answer in dingtalk_robot.answers)  # never throttled
    assert max(sum(1 for t in arrivals if first <= t < first + 60) for first in arrivals) <= 20
    assert incidents == 100
    assert {state for _, state in rows} <= {"sent", "digested"}  # the outbox drained, nothing failed
    assert {incident for incident, _ in rows} == set(range(1, 101))  # every incident in a message or a digest
    assert len(arrivals) < 30


async def test_an_outage_of_five_minutes_delays_each_message_and_delivers_it_once(
    app_for: Any,
    engine: AsyncEngine,
    dingtalk_robot: FakeDingTalkRobot,
    clock: Clock,
    http: httpx.AsyncClient,
) -> None:
    dingtalk_robot.outage_until = clock.now + 300
    # Three copies of one alert would make a storm, whose card is a fourth message: not what this is about.
    async with robot_app(app_for, engine, dingtalk_robot, clock, http, storm={"enabled": False}) as (
        client,
        services,
        outbox,
    ):
        for number in range(1, 4):
            await post(client, number)
        await drain(services, outbox, clock, step=20)
    assert clock.now >= dingtalk_robot.outage_until
    texts = [json.dumps(message) for message in dingtalk_robot.messages]
    assert len(texts) == 3  # each once, none lost, none twice
    assert [sum(f"/incidents/{n}" in text for text in texts) for n in (1, 2, 3)] == [1, 1, 1]


async def test_a_storm_diagnosed_by_the_model_stays_within_the_robots_limit(
    app_for: Any,
    engine: AsyncEngine,
    dingtalk_robot: FakeDingTalkRobot,
    clock: Clock,
    http: httpx.AsyncClient,
    fake_minimax: FakeMiniMax,
) -> None:
    fake_minimax.responder = lambda request: Reply(content=json.dumps(GOOD))
    start = clock.now
    async with robot_app(app_for, engine, dingtalk_robot, clock, http, llm=llm(fake_minimax)) as (
        client,
        services,
        outbox,
    ):
        for group in range(100):
            answer = await client.post(
                "/webhook/alertmanager", content=json.dumps(payload(group)), headers=AUTH
            )
            assert answer.status_code == 200
            if group % 10 == 9:
                await drain(services, outbox, clock)
            clock.now = max(clock.now, start + 0.55 * (group + 1))
        await drain(services, outbox, clock)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT incident_id, state FROM notifications"))).all()
            shared = (
                await conn.execute(text("SELECT count(*) FROM incidents WHERE cluster_id = 1"))
            ).scalar_one()
    arrivals = dingtalk_robot.arrivals
    assert all(answer["errcode"] == 0 for answer in dingtalk_robot.answers)
    assert max(sum(1 for t in arrivals if first <= t < first + 60) for first in arrivals) <= 20
    assert {state for _, state in rows} <= {"sent", "digested"}
    assert {incident for incident, _ in rows} == set(range(1, 101))
    texts = [message["markdown"]["text"] for message in dingtalk_robot.messages]
    storm_cards = [t for t in texts if "Alert storm \\#1" in t]
    assert len(storm_cards) == 2  # when it formed, and with its diagnosis: never folded into a digest
    # every incident is a member; at most the two before it was a storm were diagnosed alone, then one call
    assert shared == 100 and fake_minimax.calls <= 3
