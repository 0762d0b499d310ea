"""The robots behind the real pipeline and outbox: an alert storm reaches a DingTalk group within its rate limit."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.channels.dingtalk_webhook import DingTalkWebhookChannel, DingTalkWebhookConfig
from aiops.metrics import Metrics
from aiops.pipeline.outbox import Outbox
from aiops.templating import build_environment
from tests.channels.conftest import SECRET
from tests.fakes.robots import FakeDingTalkRobot
from tests.pipeline.test_outbox import Clock, drain, post


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
    config = DingTalkWebhookConfig(name="chat", url=dingtalk_robot.url, secret=SecretStr(SECRET))
    channel = DingTalkWebhookChannel(config, build_environment("en"), http, clock=clock)
    async with app_for(server={"language": "en"}) as (client, services):
        services.pipeline.stages = dataclasses.replace(services.pipeline.stages, channels=[channel])
        outbox = Outbox(engine, {"chat": channel}, Metrics(), "http://aiops", clock)
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
