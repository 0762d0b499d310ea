"""A fake WeCom on loopback (the clock and the HTTP client come from tests/channels/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from aiops.channels.wecom.api import AppClient, TokenCache
from tests.fakes.robots import Clock
from tests.fakes.wecom import AGENT_ID, CORP_ID, SECRET, FakeWeCom


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeWeCom]:
    server = FakeWeCom(clock).start()
    try:
        yield server
    finally:
        server.stop()


def app(fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, **changes: object) -> AppClient:
    settings: dict[str, object] = {
        "corp_id": CORP_ID,
        "corp_secret": SECRET,
        "agent_id": AGENT_ID,
        "base_url": fake.url,
        "time_limit": 5.0,
        "clock": clock,
        **changes,
    }
    return AppClient(http, **settings)  # type: ignore[arg-type]


@pytest.fixture
def tokens(clock: Clock) -> TokenCache:
    return TokenCache(clock)
