"""The listener: a chat message recorded once and its answer queued, in one short transaction, so that the
platform's acknowledgement deadline is met whatever the model is doing.

Who is answered: in a group, a message that mentions aiops (or answers in the thread of one of its cards, which is
a reply to aiops); one to one, the people `chat.askers` or `remediation.approvers` list for that channel kind —
anyone else gets a one-line refusal. A message the platform delivers again (the same message id) is answered once.
Past a person's hourly budget, the answer says so and no model is called.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aiops.chat import Asked, Heard
from aiops.chat.commands import parse
from aiops.chat.config import MAX_QUESTION, ChatConfig
from aiops.metrics import Metrics
from aiops.store import chat, jobs

log = logging.getLogger("aiops.chat")
ASK = "ask"  # commands, refusals and questions answered without a model: quick, on the common workers
QUESTION = "question"  # questions for the model: on the model's workers, never holding up a triage
# Platform ids are printable ASCII; anything else (a NUL above all) is no one's and would not fit the store.
_ID = re.compile(r"[!-~]{1,255}")


class ChatListener:
    """Records what people ask and queues the `ask` job that answers it."""

    def __init__(
        self,
        engine: AsyncEngine,
        config: ChatConfig,
        approvers: Callable[[], dict[str, list[str]]],
        wake: Callable[[str], None] = lambda kind: None,
        *,
        model: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._config = config
        self._approvers = approvers
        self._questions = QUESTION if model else ASK
        self.wake = wake

    async def hear(self, asked: Asked) -> Heard:
        heard = await self._hear(asked)
        if self._metrics is not None:
            self._metrics.chat_messages.labels(asked.channel[:64], heard).inc()
        return heard

    async def _hear(self, asked: Asked) -> Heard:
        problem = _malformed(asked)
        if problem is not None:
            log.warning("%s: a chat message was ignored: %s", asked.channel, problem)
            return "ignored"
        if not asked.text.strip() or not (asked.direct or asked.mentioned):
            return "ignored"
        outcome = self._outcome(asked)
        asked = _bounded(asked)
        async with self._engine.begin() as conn:
            if outcome == chat.QUEUED and await self._spent(conn, asked):
                outcome = chat.OVER_BUDGET
            message_id = await chat.record(conn, asked, outcome, None)
            if message_id is None:
                log.info("%s: message %s was delivered again; answered once", asked.channel, asked.message_id)
                return "duplicate"
            kind = self._questions if outcome == chat.QUEUED else ASK
            await jobs.enqueue(
                conn,
                kind,
                f"{kind}:{asked.channel}:{asked.conversation}",  # in order; a command never behind a question
                {"message_id": message_id},
                dedup_key=f"ask-{message_id}",
            )
        self.wake(kind)
        return "refused" if outcome == chat.REFUSED else "queued"

    def _outcome(self, asked: Asked) -> str:
        if asked.direct and not self._config.may_ask_directly(asked.kind, asked.user, self._approvers()):
            log.warning("%s: %s may not message aiops directly (chat.askers)", asked.channel, asked.user)
            return chat.REFUSED
        return chat.COMMAND if parse(asked.text).command is not None else chat.QUEUED

    async def _spent(self, conn: AsyncConnection, asked: Asked) -> bool:
        asked_before = await chat.asked_since(conn, asked.kind, asked.user, time.time() - 3600.0)
        return asked_before >= self._config.questions_per_hour


def _malformed(asked: Asked) -> str | None:
    for name in ("user", "message_id", "channel"):
        if not _ID.fullmatch(getattr(asked, name)):
            return f"{name} is not a platform id: {getattr(asked, name)[:60]!r}"
    if len(asked.conversation) > 255 or (asked.thread is not None and len(asked.thread) > 255):
        return "conversation or thread is longer than 255 characters"
    return None


def _bounded(asked: Asked) -> Asked:
    """The question within MAX_QUESTION characters, NULs (which no store keeps) taken out."""
    cleaned = asked.text.replace("\x00", "").strip()
    if len(cleaned) > MAX_QUESTION:
        cleaned = cleaned[:MAX_QUESTION] + " …"
    if cleaned == asked.text:
        return asked
    return Asked(**{**asked.__dict__, "text": cleaned})
