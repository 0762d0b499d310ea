"""A `Listener` that records what an inbound side hands it, as chat's would, for the channels' inbound tests."""

from __future__ import annotations

from aiops.chat import Asked, Heard


class Recorder:
    """Hears every message and keeps it; a message id heard before is a duplicate, as chat answers it."""

    def __init__(self) -> None:
        self.heard: list[Asked] = []

    async def hear(self, asked: Asked) -> Heard:
        seen = any(earlier.message_id == asked.message_id for earlier in self.heard)
        self.heard.append(asked)
        return "duplicate" if seen else "queued"
