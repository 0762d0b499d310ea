"""A `Listener` that records what an inbound side hands it, as chat's would, for the channels' inbound tests."""

from __future__ import annotations

from aiops.chat import Asked, Heard


class Recorder:
    """Keeps every message handed to it; answers as chat does: a message id heard before is a duplicate, an
    empty one or a group message that does not mention aiops is ignored, the rest queued."""

    def __init__(self) -> None:
        self.heard: list[Asked] = []

    async def hear(self, asked: Asked) -> Heard:
        seen = any(earlier.message_id == asked.message_id for earlier in self.heard)
        self.heard.append(asked)
        if seen:
            return "duplicate"
        return "queued" if asked.text and (asked.direct or asked.mentioned) else "ignored"
