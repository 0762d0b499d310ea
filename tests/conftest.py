"""Shared fixtures: a store on each engine, and the real programs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.store import migrate
from aiops.store.engine import DatabaseConfig, create_engine
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.discord import FakeDiscord
from tests.fakes.feishu import FakeFeishu
from tests.fakes.minimax import FakeMiniMax
from tests.fakes.prometheus import FakePrometheus
from tests.fakes.wecom import FakeWeCom
from tests.support.app import running, settings_for
from tests.support.local_model import FIGURES, LocalModel, running_local_model
from tests.support.postgres import PostgresServer
from tests.support.proxy import Pproxy

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The local model's figures (validity, tokens, latency per scenario), which no assertion covers."""
    for figures in config.stash.get(FIGURES, []):
        terminalreporter.write_sep("-", "local model")
        terminalreporter.write_line(figures)


@pytest.fixture(scope="session")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModel]:
    """llama-cpp-python's server with SmolLM2-135M on loopback, shared by the suite; stopped at its end."""
    with running_local_model(tmp_path_factory.mktemp("local-model")) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each engine; tests using it run twice."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/aiops.db"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseConfig(url=database_url))
    await migrate.upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def fake_minimax() -> Iterator[FakeMiniMax]:
    fake = FakeMiniMax().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_feishu() -> Iterator[FakeFeishu]:
    fake = FakeFeishu().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_dingtalk() -> Iterator[FakeDingTalk]:
    fake = FakeDingTalk().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_wecom() -> Iterator[FakeWeCom]:
    fake = FakeWeCom().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_discord() -> Iterator[FakeDiscord]:
    fake = FakeDiscord().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Pproxy]:
    """A real SOCKS5 (and HTTP) proxy on loopback that logs what it carries."""
    server = Pproxy(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def payload_text() -> str:
    return (DATA / "firing.json").read_text()


@pytest.fixture
def app_for(engine: AsyncEngine, database_url: str) -> Callable[..., Any]:
    """`async with app_for(webhook={...}) as (client, services)`: the app in-process, on `engine`'s database."""

    def make(**sections: Any) -> Any:
        return running(settings_for(database_url, **sections), engine)

    return make
