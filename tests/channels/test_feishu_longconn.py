"""Feishu card clicks over the long connection: the real lark-oapi `ws.Client`, in its own thread, against a fake
gateway speaking Feishu's protobuf frames; each click is decided on the service's loop and answered within 3 s."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from lark_oapi.ws import client as lark_ws_client  # type: ignore[import-untyped]

from aiops.channels.feishu import FeishuConfig
from aiops.channels.feishu.inbound import clicks
from aiops.channels.feishu.longconn import LongConnection
from aiops.service import Services
from tests.fakes.feishu import SECRET, FakeFeishu, FeishuCallbacks
from tests.fakes.feishu_ws import FakeLongConnection
from tests.web.test_feishu_callbacks import REMEDIATION, propose, state, value

SENDER = FeishuCallbacks("unused-in-long-connection-mode")


@pytest.fixture
def feishu() -> Any:
    fake = FakeFeishu().start()
    fake.gateway = FakeLongConnection(fake.app_id, SECRET).start()
    yield fake
    fake.gateway.stop()
    fake.stop()


def config_for(fake: FakeFeishu, secret: str = SECRET) -> FeishuConfig:
    return FeishuConfig(
        app_id=fake.app_id,
        app_secret=secret,
        chat_id=fake.chat_id,
        domain=fake.url,
        callbacks="long_connection",
    )


@asynccontextmanager
async def connected(services: Services, config: FeishuConfig) -> AsyncIterator[LongConnection]:
    connection = LongConnection(config, clicks(services.deciders))
    connection.start()
    try:
        yield connection
    finally:
        await connection.stop()


@asynccontextmanager
async def listening(
    app_for: Callable[..., Any], fake: FakeFeishu
) -> AsyncIterator[tuple[Services, dict[str, Any], FakeLongConnection]]:
    """The app with one pending proposal, and its long connection open to the fake gateway."""
    gateway = fake.gateway
    assert gateway is not None
    async with app_for(remediation=REMEDIATION) as (client, services):
        item = await propose(client, services)
        async with connected(services, config_for(fake)):
            await asyncio.to_thread(gateway.wait_connected)
            yield services, item, gateway


async def push(gateway: FakeLongConnection, payload: dict[str, Any], parts: int = 1) -> Any:
    """Send a callback from the gateway's side; the service's loop keeps running meanwhile."""
    return await asyncio.to_thread(gateway.send, payload, parts=parts)


async def test_an_approvers_click_is_decided_and_answered_with_toast_and_card(
    app_for: Callable[..., Any], feishu: FakeFeishu
) -> None:
    async with listening(app_for, feishu) as (services, item, gateway):
        answer = await push(gateway, SENDER.card_action("ou_alice", value(item)), parts=2)
        again = await push(gateway, SENDER.card_action("ou_alice", value(item)))
        after = await state(services, item)
    assert answer.code == 200
    assert answer.body is not None and answer.body["toast"]["type"] == "success"
    assert answer.body["card"]["type"] == "raw" and answer.body["card"]["data"]["schema"] == "2.0"
    assert again.body is not None and again.body["toast"]["type"] == "info"  # already decided: still once
    assert after[:2] == ("approved", 1)


async def test_a_click_from_someone_else_changes_nothing(
    app_for: Callable[..., Any], feishu: FakeFeishu
) -> None:
    async with listening(app_for, feishu) as (services, item, gateway):
        before = await state(services, item)
        stranger = await push(gateway, SENDER.card_action("ou_mallory", value(item)))
        malformed = await push(gateway, SENDER.card_action("ou_alice", {"proposal": "x"}))
        after = await state(services, item)
    assert stranger.body is not None and stranger.body["toast"]["type"] == "error"
    assert "ou_mallory" in stranger.body["toast"]["content"] and "card" not in stranger.body
    assert malformed.body is not None and malformed.body["toast"]["type"] == "error"
    assert after[:2] == before[:2] == ("pending", 0)


async def test_the_client_connects_again_after_the_gateway_drops_it(
    app_for: Callable[..., Any], feishu: FakeFeishu
) -> None:
    async with listening(app_for, feishu) as (services, item, gateway):
        gateway.drop()
        await asyncio.to_thread(_wait_for, lambda: gateway.connections >= 2 and gateway.open_connections)
        answer = await push(gateway, SENDER.card_action("ou_alice", value(item, "reject")))
        after = await state(services, item)
    assert after[:2] == ("rejected", 0)
    assert answer.body is not None and answer.body["toast"]["type"] == "success"
    assert gateway.endpoint_requests >= 2  # each connection asks for a fresh URL and ticket


async def test_a_refused_app_secret_is_logged_and_stopping_is_prompt(
    app_for: Callable[..., Any], feishu: FakeFeishu, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = feishu.gateway
    assert gateway is not None
    wrong = "not-the-app-secret-0123456789"
    caplog.set_level(logging.INFO)
    async with app_for(remediation=REMEDIATION) as (_, services):
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with connected(services, config_for(feishu, wrong)):
            await asyncio.to_thread(_wait_for, lambda: gateway.endpoint_requests >= 1)
            await asyncio.to_thread(_wait_for, lambda: "refused the long connection" in caplog.text)
        stopped_after = loop.time() - started
    assert gateway.connections == 0
    assert "channels.feishu.app_id and app_secret" in caplog.text
    assert stopped_after < 30.0  # stop() cuts the minute's wait before the next attempt short


async def test_the_service_opens_the_connection_when_configured_and_closes_it(
    database_url: str, engine: Any, feishu: FakeFeishu, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiops.web.app import create_app
    from tests.support.app import settings_for

    gateway = feishu.gateway
    assert gateway is not None
    channels = {"feishu": config_for(feishu).model_dump(mode="json") | {"app_secret": SECRET}}
    settings = settings_for(database_url, channels=channels, remediation=REMEDIATION)
    app = create_app(settings, engine=engine, workers=True)
    # As when lark-oapi is first imported inside the running service: its client module holds the service's loop.
    monkeypatch.setattr(lark_ws_client, "loop", asyncio.get_running_loop())
    async with app.router.lifespan_context(app):
        await asyncio.to_thread(gateway.wait_connected)
    await asyncio.to_thread(_wait_for, lambda: gateway.open_connections == 0)


def _wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
