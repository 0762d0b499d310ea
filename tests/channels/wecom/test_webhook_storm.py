"""The WeCom group robot behind the real pipeline and outbox: an alert storm reaches the group within 20 messages a
minute, as the fake robot counts, with every incident in a message or a digest."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.channels.wecom_webhook import WeComWebhookChannel, WeComWebhookConfig
from aiops.metrics import Metrics
from aiops.pipeline.outbox import Outbox
from aiops.templating import build_environment
from tests.channels.test_robots_outbox import payload
from tests.fakes.wecom import ROBOT_KEY, FakeWeCom, robot_contents
from tests.pipeline.test_outbox import Clock, drain
from tests.support.app import AUTH


class CountingWeCom(FakeWeCom):
    """The fake, keeping when it accepted each robot message and every errcode it answered."""

    def __init__(self, clock: Clock) -> None:
        self.accepted: list[float] = []
        self.errcodes: list[int] = []
        super().__init__(clock)

    def _robot(self, key: str, body: Any) -> dict[str, Any]:
        answer = super()._robot(key, body)
        self.errcodes.append(int(answer["errcode"]))
        if answer["errcode"] == 0:
            self.accepted.append(self.clock())
        return answer


@pytest.fixture
def clock() -> Clock:
    """The outbox tests' simulated clock, shared by the outbox, the channel's pacer and the fake robot."""
    return Clock()


@pytest.fixture
def robot(clock: Clock) -> Iterator[CountingWeCom]:
    server = CountingWeCom(clock).start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_storm_of_500_alerts_in_100_groups_within_a_minute(
    app_for: Any, engine: AsyncEngine, robot: CountingWeCom, clock: Clock
) -> None:
    config = WeComWebhookConfig(name="chat", key=SecretStr(ROBOT_KEY), base_url=robot.url)
    start = clock.now
    async with httpx.AsyncClient() as http, app_for(server={"language": "zh-CN"}) as (client, services):
        channel = WeComWebhookChannel(config, build_environment("zh-CN"), http, clock=clock)
        services.pipeline.stages = dataclasses.replace(services.pipeline.stages, channels=[channel])
        outbox = Outbox(engine, {"chat": channel}, Metrics(), "http://aiops", clock)
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
    assert set(robot.errcodes) == {0}  # never throttled, never too long
    sent = robot.accepted
    assert max(sum(1 for t in sent if first <= t < first + 60) for first in sent) <= 20
    assert {state for _, state in rows} <= {"sent", "digested"}  # the outbox drained, nothing failed
    assert {incident for incident, _ in rows} == set(range(1, 101))  # every incident in a message or a digest
    assert all(len(content.encode()) <= 4096 for content in robot_contents(robot))
    assert 2 <= len(sent) < 40  # the storm was folded, not posted one message per incident
    assert any(content.startswith("### 告警风暴") for content in robot_contents(robot))
