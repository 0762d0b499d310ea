"""Fake robots on loopback, and a clock the tests move by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.fakes.feishu import SECRET as FEISHU_SECRET
from tests.fakes.feishu import FakeFeishu
from tests.fakes.feishu_ws import FakeLongConnection
from tests.fakes.robots import Clock, FakeDingTalkRobot, FakeFeishuRobot

SECRET = "SECb7c1f0d2e9a84f6c"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def feishu_robot(clock: Clock) -> Iterator[FakeFeishuRobot]:
    fake = FakeFeishuRobot(SECRET, clock).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def dingtalk_robot(clock: Clock) -> Iterator[FakeDingTalkRobot]:
    fake = FakeDingTalkRobot(SECRET, clock).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def feishu() -> Iterator[FakeFeishu]:
    """Feishu's Open API and its long-connection gateway, faked on loopback."""
    fake = FakeFeishu().start()
    fake.gateway = FakeLongConnection(fake.app_id, FEISHU_SECRET).start()
    try:
        yield fake
    finally:
        fake.gateway.stop()
        fake.stop()
