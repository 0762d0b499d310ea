"""Asking aiops in a Feishu card's thread, with real processes: a real Prometheus fires, `aiops serve` posts the
card to a fake Feishu, and messages Feishu pushes to `POST /callbacks/feishu` (signed and encrypted) are answered in
that thread — a question from a query against the real Prometheus, once however often it is delivered, and
"silence 2h" as a proposal that an approver's click on the card turns into a silence in the real Alertmanager."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.test_feishu_flow import APPROVER, ENCRYPT_KEY, STRANGER, VERIFICATION_TOKEN, app
from tests.fakes.feishu import FakeFeishu, FeishuCallbacks
from tests.fakes.minimax import FakeMiniMax
from tests.support import stack as s
from tests.support.chat import VALUE, chat_requests, llm_section
from tests.support.e2e import ALERT, DEADLINE, GAUGE, QUIET, TOKEN, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ASKER = "ou_bob"


@pytest.fixture
def feishu(fake_feishu: FakeFeishu) -> FakeFeishu:
    return fake_feishu


def _texts(value: Any) -> str:
    """Everything a card shows as text, as a reader sees it (entities undone)."""
    if isinstance(value, dict):
        own = (
            [html.unescape(str(value["content"]))]
            if value.get("tag") in ("markdown", "plain_text", "lark_md")
            else []
        )
        return "\n".join(own + [_texts(item) for item in value.values()])
    if isinstance(value, list):
        return "\n".join(_texts(item) for item in value)
    return ""


def _callback_values(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        found = [b["value"] for b in value.get("behaviors", []) if b.get("type") == "callback"]
        return found + [v for item in value.values() for v in _callback_values(item)]
    if isinstance(value, list):
        return [v for item in value for v in _callback_values(item)]
    return []


class Chat:
    def __init__(self, stack: Stack, feishu: FakeFeishu) -> None:
        self.stack, self.feishu = stack, feishu
        self.sender = FeishuCallbacks(VERIFICATION_TOKEN, ENCRYPT_KEY)

    def post(self, payload: dict[str, Any]) -> httpx.Response:
        body, headers = self.sender.request(payload)
        return s.http().post(f"{self.stack.aiops.url}/callbacks/feishu", content=body, headers=headers)

    def says(self, open_id: str, text: str, **where: Any) -> dict[str, Any]:
        """`open_id` writes to the bot (mentioning it); the event Feishu pushed, after aiops took it."""
        event = self.feishu.says(open_id, f"@_user_1 {text}", mentions={"@_user_1": self.feishu.bot}, **where)
        payload = self.sender.event("im.message.receive_v1", event)
        answer = self.post(payload)
        assert answer.status_code == 200, answer.text
        return payload

    def replies_to(self, payload: dict[str, Any]) -> list[Any]:
        asked = payload["event"]["message"]["message_id"]
        return [reply for reply in self.feishu.replies if reply.to == asked]


def test_a_thread_question_is_answered_from_prometheus_and_silence_takes_an_approval(
    start_stack: Callable[..., Stack], feishu: FakeFeishu, model: FakeMiniMax
) -> None:
    stack = start_stack(
        TOKEN,
        link_alertmanager=True,
        channels={"feishu": app(feishu)},
        llm=llm_section(model),
        remediation={"approvers": {"feishu": [APPROVER]}},
        server={"language": "en"},
    )
    chat = Chat(stack, feishu)

    def logs() -> str:
        replies = json.dumps([r.card for r in feishu.replies], ensure_ascii=False)[-s.LOG_TAIL :]
        return s.report([("fake Feishu replies", replies)]) + "\n" + stack.logs()

    [incident] = s.eventually(stack.incidents, timeout=DEADLINE, what="an incident", logs=logs)
    card = s.eventually(
        lambda: next(iter(feishu.messages), None), timeout=DEADLINE, what="the card", logs=logs
    )
    stack.exporter.value, scraped = VALUE, stack.exporter.scrapes
    s.eventually(
        lambda: stack.exporter.scrapes >= scraped + 2 or None, timeout=DEADLINE, what="a scrape", logs=logs
    )

    # A question in the card's thread, answered in that thread from the real Prometheus.
    question = chat.says(ASKER, "why is this firing?", root_id=card)
    [reply] = s.eventually(
        lambda: chat.replies_to(question) or None, timeout=DEADLINE, what="an answer", logs=logs
    )
    assert reply.in_thread and reply.chat_id == feishu.chat_id, logs()
    shown = _texts(reply.card)
    assert GAUGE in shown and f"last {VALUE}" in shown, logs()
    assert f"INCIDENT #{incident['id']}" in chat_requests(model)[0]["messages"][1]["content"]

    # Delivered again (Feishu retries an event it thinks was lost): answered once.
    assert chat.post(question).status_code == 200
    time.sleep(QUIET)
    assert len(chat.replies_to(question)) == 1 and len(chat_requests(model)) == 2, logs()

    # A stranger's direct message is refused, and no model is asked.
    dm = chat.says(STRANGER, "status", direct=True)
    [refusal] = s.eventually(
        lambda: chat.replies_to(dm) or None, timeout=DEADLINE, what="a refusal", logs=logs
    )
    assert "chat.askers" in _texts(refusal.card) and len(chat_requests(model)) == 2

    # "silence 2h" in the thread: a proposal on the card, which the approver's click turns into a silence.
    silence = chat.says(ASKER, "silence 2h", root_id=card)
    [told] = s.eventually(
        lambda: chat.replies_to(silence) or None, timeout=DEADLINE, what="the proposal", logs=logs
    )
    proposal = next(p for p in stack.incident(incident["id"])["proposals"] if p["action_id"] == "silence")
    assert f"Proposal #{proposal['id']}" in _texts(told.card) and proposal["state"] == "pending", logs()
    approve = {"proposal": proposal["id"], "decision": "approve", "hash": proposal["argv_hash"][:16]}

    def offered() -> bool | None:
        return approve in _callback_values(feishu.messages[card][-1]) or None

    s.eventually(offered, timeout=DEADLINE, what="the card offering the silence", logs=logs)
    body, headers = chat.sender.request(chat.sender.card_action(APPROVER, approve, message_id=card))
    clicked = s.http().post(f"{stack.aiops.url}/callbacks/feishu", content=body, headers=headers)
    assert clicked.json()["toast"]["type"] == "success", clicked.text

    def silenced() -> list[dict[str, Any]] | None:
        url = stack.alertmanager.ready_url.replace("/-/ready", "/api/v2/silences")
        found = [x for x in s.http().get(url).json() if x["status"]["state"] == "active"]
        return found or None

    [made] = s.eventually(silenced, timeout=DEADLINE, what="a silence in Alertmanager", logs=logs)
    matchers = {m["name"]: m["value"] for m in made["matchers"]}
    assert matchers["alertname"] == ALERT and matchers["instance"] == stack.exporter.target, made
    assert APPROVER in made["createdBy"] or "aiops" in made["createdBy"], made
