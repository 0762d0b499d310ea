"""A fake Discord on loopback, on a clock that the client's sleeps move (the clock and the HTTP client come from
tests/channels/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from aiops.channels.discord.api import DiscordRest
from tests.fakes.discord import APPLICATION_ID, BOT_TOKEN, FakeDiscord
from tests.fakes.robots import Clock


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeDiscord]:
    server = FakeDiscord(clock).start()
    try:
        yield server
    finally:
        server.stop()


class Sleeps:
    """The client's sleep: moves the clock instead of waiting, and keeps what it was asked."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.taken: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def sleeps(clock: Clock) -> Sleeps:
    return Sleeps(clock)


def rest(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps, **changes: object
) -> DiscordRest:
    settings: dict[str, object] = {
        "bot_token": BOT_TOKEN,
        "application_id": APPLICATION_ID,
        "base_url": fake.api,
        "clock": clock,
        "sleep": sleeps,
        **changes,
    }
    return DiscordRest(http, **settings)  # type: ignore[arg-type]
