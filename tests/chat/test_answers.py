"""Chat messages to aiops, end to end inside the service: heard once, answered from the store, commands decided on
the path buttons take — with a channel whose platform is a list (tests/chat/conftest.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from aiops.chat import Asked
from aiops.chat.answers import REPLY, Answers
from aiops.chat.ask import ModelAsker
from aiops.chat.listener import ASK, QUESTION
from aiops.pipeline.outbox import Outbox
from aiops.service import Services
from aiops.store import actions, notifications
from tests.chat.conftest import Replies, drain
from tests.support.app import AUTH, FIRING

APPROVER, ASKER, STRANGER = "ou_alice", "ou_bob", "ou_mallory"
CARD = "om_card_0001"


def runbooks(folder: Path) -> Path:
    folder.mkdir()
    (folder / "disk.md").write_text(
        "---\nalerts: [HostOutOfDiskSpace]\nactions: [restart-service, clean-tmp]\n---\n# Disk full\n"
    )
    (folder / "actions.yml").write_text(
        "restart-service:\n  description: Restart nginx\n  argv: [systemctl, restart, nginx]\n"
        "  target: labels.instance\n  risk: high\n  timeout: 20s\n"
        "clean-tmp:\n  description: Clean /tmp\n  argv: [find, /tmp, -delete]\n"
        "  target: labels.instance\n  risk: low\n  timeout: 20s\n"
    )
    return folder


class Chat:
    """The service with a replying channel: `ask` hands a message over and drains the queue."""

    def __init__(
        self, services: Services, replies: Replies, incident_id: int, asker: ModelAsker | None = None
    ) -> None:
        self.services, self.replies, self.incident_id = services, replies, incident_id
        answers = Answers(
            services.engine,
            {replies.name: replies},
            services.decisions,
            services.pipeline,
            services.settings.remediation,
            "http://aiops",
            "en",
            asker,
        )
        outbox = Outbox(services.engine, {replies.name: replies}, services.metrics, "http://aiops")
        self.handlers = {ASK: answers.handle, QUESTION: answers.handle, REPLY: outbox.handle_reply}
        self._next = 0

    def asked(self, text: str, user: str = ASKER, **fields: Any) -> Asked:
        self._next += 1
        values: dict[str, Any] = {
            "kind": "feishu",
            "channel": self.replies.name,
            "message_id": f"om_{self._next}",
            "user": user,
            "text": text,
            "direct": False,
            "mentioned": True,
            "conversation": "oc_group",
            "thread": CARD,
            "reply_to": {"message_id": f"om_{self._next}"},
        }
        return Asked(**{**values, **fields})

    async def ask(self, asked: Asked) -> str:
        heard = await self.services.chat.hear(asked)  # type: ignore[union-attr]
        await drain(self.services.engine, self.handlers, frozenset({ASK, QUESTION, REPLY}))
        return heard

    async def pending(self, action_id: str | None = None) -> list[dict[str, Any]]:
        async with self.services.engine.connect() as conn:
            waiting = await actions.pending(conn, self.incident_id)
        return [item for item in waiting if action_id in (None, item["action_id"])]

    def said(self) -> str:
        return " ".join(self.replies.sent[-1][1]["lines"])


@pytest.fixture
async def chat(app_for: Any, tmp_path: Path) -> AsyncIterator[Chat]:
    sections = {
        "runbooks": {"dir": str(runbooks(tmp_path / "runbooks"))},
        "hosts": {"web-1": _host(tmp_path)},
        "remediation": {"approvers": {"feishu": [APPROVER]}},
        "chat": {"askers": {"feishu": [ASKER]}, "questions_per_hour": 3},
        "server": {"language": "en"},
    }
    async with app_for(**sections) as (client, services):
        incident_id = await _incident(client, services)
        yield Chat(services, Replies(), incident_id)


def _host(folder: Path) -> dict[str, str]:
    """An inventory host nothing connects to here: proposals resolve to it, nothing is approved to run on it."""
    (folder / "key").write_text("unused")
    (folder / "known_hosts").write_text("")
    return {
        "address": "127.0.0.1",
        "user": "ops",
        "key_file": str(folder / "key"),
        "known_hosts": str(folder / "known_hosts"),
    }


async def _incident(client: httpx.AsyncClient, services: Services) -> int:
    answer = await client.post("/webhook/alertmanager", content=FIRING.read_bytes(), headers=AUTH)
    await services.pipeline.run(int(answer.json()["delivery"]))
    async with services.engine.begin() as conn:
        incident_id = int((await conn.execute(text("SELECT id FROM incidents"))).scalar_one())
        await notifications.keep_handle(conn, incident_id, "chatty", CARD)
    return incident_id


async def test_a_question_in_the_cards_thread_is_about_its_incident(chat: Chat) -> None:
    assert await chat.ask(chat.asked("why is the disk full?")) == "queued"
    [(where, reply)] = chat.replies.sent
    assert where == {"message_id": "om_1"}
    assert reply["incident"] == chat.incident_id and not reply["refusal"]
    assert "No model is configured" in reply["lines"][0]
    assert f"Incident #{chat.incident_id}" in chat.said() and "Runbook" in chat.said()
    assert reply["to"] == ASKER  # in a group, the asker is mentioned


async def test_unmentioned_group_messages_are_ignored_and_strangers_refused(chat: Chat) -> None:
    assert await chat.ask(chat.asked("lunch?", mentioned=False, thread=None)) == "ignored"
    assert chat.replies.sent == []
    assert await chat.ask(chat.asked("status #1", user=STRANGER, direct=True, thread=None)) == "refused"
    [(_, reply)] = chat.replies.sent
    assert reply["refusal"] and "chat.askers" in reply["lines"][0]
    # An approver may message aiops directly without being listed as an asker.
    assert await chat.ask(chat.asked("help", user=APPROVER, direct=True, thread=None)) == "queued"
    assert "Commands" in chat.said()


async def test_a_redelivered_message_is_answered_once(chat: Chat) -> None:
    first = chat.asked("status")
    assert await chat.ask(first) == "queued"
    assert await chat.ask(first) == "duplicate"
    assert len(chat.replies.sent) == 1
    async with chat.services.engine.connect() as conn:  # the reply counts in the channel's rate limit
        assert len(await notifications.sent_since(conn, "chatty", 0.0)) == 1
    counted = chat.services.metrics.chat_messages
    assert counted.labels("chatty", "duplicate")._value.get() == 1
    assert counted.labels("chatty", "queued")._value.get() == 1


async def test_past_the_hourly_budget_the_reply_says_so(chat: Chat) -> None:
    for number in range(3):
        await chat.ask(chat.asked(f"question {number}?"))
    await chat.ask(chat.asked("one more?"))
    last = chat.replies.sent[-1][1]
    assert last["refusal"] and "questions_per_hour" in last["lines"][0]
    await chat.ask(chat.asked("status"))  # commands are not questions: not counted, still answered
    assert not chat.replies.sent[-1][1]["refusal"]


async def test_silence_in_a_thread_becomes_a_proposal_on_the_card(chat: Chat) -> None:
    await chat.ask(chat.asked("silence this for 2 hours"))
    [waiting] = await chat.pending("silence")
    assert waiting["argv"] == ["silence", "2h"]
    assert waiting["origin"] == "chat"
    assert f"Proposal #{waiting['id']}" in chat.said() and "waits for an approver" in chat.said()
    # Asked again, the same proposal is found, not made twice.
    await chat.ask(chat.asked("silence 2h"))
    assert len(await chat.pending("silence")) == 1
    assert "The card" not in chat.said()


async def test_approve_in_chat_is_the_buttons_decision(chat: Chat) -> None:
    await chat.ask(chat.asked("run clean-tmp"))
    [waiting] = await chat.pending(
        "clean-tmp"
    )  # the runbook's, proposed by the triage: found, not made again
    assert f"Proposal #{waiting['id']}" in chat.said()
    await chat.ask(chat.asked(f"approve {waiting['id']}"))  # the asker is no approver
    async with chat.services.engine.connect() as conn:
        assert (await actions.proposal(conn, waiting["id"]))["state"] == "pending"  # type: ignore[index]
    await chat.ask(chat.asked(f"approve {waiting['id']}", user=APPROVER))
    async with chat.services.engine.connect() as conn:
        decided = await actions.proposal(conn, waiting["id"])
        queued = (await conn.execute(text("SELECT payload FROM jobs WHERE kind = 'execute'"))).scalars().all()
    assert decided is not None and decided["state"] == "approved" and decided["decided_by"] == APPROVER
    assert decided["decided_via"] == "feishu"
    assert [json.loads(payload)["proposal_id"] for payload in queued] == [waiting["id"]]


async def test_a_risky_run_from_a_non_approver_changes_nothing(chat: Chat) -> None:
    before = await chat.pending()
    await chat.ask(chat.asked("run restart-service"))
    assert "Only approvers" in chat.said()
    await chat.ask(chat.asked("run rm-everything", user=APPROVER))
    assert "cannot be proposed" in chat.said() and "does not allow rm-everything" in chat.said()
    assert await chat.pending() == before
    async with chat.services.engine.connect() as conn:
        runs = (await conn.execute(text("SELECT count(*) FROM jobs WHERE kind = 'execute'"))).scalar_one()
    assert runs == 0
