"""`aiops replay PAYLOAD.json`: the whole pipeline on a saved payload, printing what each channel would post.

Uses a throw-away in-memory store, so nothing touches the real database and no chat platform is called.
"""

from __future__ import annotations

import dataclasses
from typing import TextIO

from aiops import service
from aiops.channels import Announcement, Channel, Digest, RateLimit
from aiops.channels.console import ConsoleChannel, ConsoleConfig
from aiops.config import Settings
from aiops.payload import WebhookPayload
from aiops.pipeline.runner import Pipeline
from aiops.store import deliveries
from aiops.store.engine import MEMORY, DatabaseConfig


class Printed:
    """Wraps a channel: renders as the channel would, prints instead of posting."""

    limits = RateLimit()
    immediate = True
    results_on_card = False
    routing = None  # every channel prints, whatever its `match` says

    def __init__(self, channel: Channel, out: TextIO) -> None:
        self.name = channel.name
        self._channel = channel
        self._out = out

    def render(self, announcement: Announcement) -> str:
        return self._channel.render(announcement)

    def render_digest(self, digest: Digest) -> str:
        return self._channel.render_digest(digest)

    async def send(self, body: str) -> str | None:
        self._out.write(f"--- would post to {self.name} ---\n{body.rstrip()}\n")
        return None

    async def update(self, handle: str, body: str) -> None:
        await self.send(body)


async def replay(settings: Settings, text: str, out: TextIO) -> int:
    """Returns the number of announcements printed."""
    group = WebhookPayload.model_validate_json(text).to_group()
    memory = settings.model_copy(update={"database": DatabaseConfig(url=MEMORY)})
    services = await service.start(memory, workers=False)
    try:
        base = services.pipeline.stages
        channels = [Printed(channel, out) for channel in base.channels] or [
            Printed(ConsoleChannel(ConsoleConfig(), services.templates), out)
        ]
        stages = dataclasses.replace(base, channels=channels, notify_within=None)
        pipeline = Pipeline(services.engine, stages, services.metrics, memory.server.base_url)
        async with services.engine.begin() as conn:
            receipt = await deliveries.record(conn, group, text)
        await pipeline.run(receipt.delivery_id)
    finally:
        await services.close()
    return len(channels)
