"""What the chat tests share: a channel that replies into a list, and a queue drained in the test."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.channels import Announcement, Digest, RateLimit
from aiops.chat import Reply
from aiops.i18n import say
from aiops.queue import Handler
from aiops.store import jobs
from tests.llm.conftest import runbooks  # noqa: F401 - the disk runbook and catalog of the model's tests


@dataclass
class Replies:
    """A `Replying` channel whose platform is a list: each reply's target and body, as the outbox sent it."""

    name: str = "chatty"
    limits: RateLimit = field(default_factory=lambda: RateLimit(per_minute=20))
    immediate: bool = False
    results_on_card: bool = False
    routing: Any = None
    sent: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def render(self, announcement: Announcement) -> str:
        return json.dumps({"card": announcement.incident.id})

    def render_digest(self, digest: Digest) -> str:
        return "{}"

    async def send(self, body: str) -> str | None:
        return None

    async def update(self, handle: str, body: str) -> None:
        return None

    def render_reply(self, reply: Reply) -> str:
        return json.dumps(
            {
                "lines": [say(line, "en") for line in reply.lines],
                "ran": [[r.tool, r.query, r.result] for r in reply.ran],
                "incident": reply.incident_id,
                "refusal": reply.refusal,
                "to": reply.to_user,
            }
        )

    async def reply(self, reply_to: Mapping[str, str], body: str) -> None:
        self.sent.append((dict(reply_to), json.loads(body)))


async def drain(engine: AsyncEngine, handlers: Mapping[str, Handler], kinds: frozenset[str]) -> list[str]:
    """Work the queued jobs of `kinds` until none is left; returns the kinds worked, in order."""
    done: list[str] = []
    lane = jobs.Lane(kinds, exclude=False)
    for _ in range(200):
        async with engine.begin() as conn:
            job = await jobs.claim(conn, "test", 60, lane)
        if job is None:
            return done
        await handlers[job.kind](job)
        async with engine.begin() as conn:
            await jobs.finish(conn, job.id, "test")
        done.append(job.kind)
    raise AssertionError("the queue did not drain")
