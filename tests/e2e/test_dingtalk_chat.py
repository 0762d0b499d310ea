"""Asking aiops through DingTalk's Stream, with real processes: a real Prometheus fires, `aiops serve` announces
the incident, and chatbot messages pushed over the Stream connection it opened are answered through the session
webhook — from a query that ran against the real Prometheus — once each, and only for those aiops listens to."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.dingtalk import SECRET, FakeDingTalk
from tests.fakes.minimax import FakeMiniMax
from tests.support import stack as s
from tests.support.chat import VALUE, chat_requests, llm_section
from tests.support.e2e import DEADLINE, GAUGE, QUIET, TOKEN, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

DATA = Path(__file__).resolve().parents[1] / "data" / "dingtalk"
ASKER, STRANGER = "staff-1", "staff-mallory"


@pytest.fixture
def dingtalk(fake_dingtalk: FakeDingTalk) -> FakeDingTalk:
    return fake_dingtalk


def _message(name: str, text: str, msg_id: str, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(json.loads((DATA / name).read_text()))
    return {**data, "text": {"content": text}, "msgId": msg_id, **fields}


def test_a_question_is_answered_from_prometheus_once_and_only_for_those_heard(
    start_stack: Callable[..., Stack], dingtalk: FakeDingTalk, model: FakeMiniMax
) -> None:
    stack = start_stack(
        TOKEN,
        channels={
            "dingtalk": {
                "client_id": dingtalk.client_id,
                "client_secret": SECRET,
                "open_conversation_id": dingtalk.group,
                "card_template_id": "e2e-template-0000.schema",
                "api": dingtalk.url,
                "token_url": f"{dingtalk.url}/v1.0/oauth2/accessToken",
                "gateway": dingtalk.url,
                "timeout": 5,
            }
        },
        llm=llm_section(model),
        server={"language": "en"},
    )

    def logs() -> str:
        posts = json.dumps(dingtalk.session_posts, ensure_ascii=False)[-s.LOG_TAIL :]
        return s.report([("session webhook posts", posts)]) + "\n" + stack.logs()

    [incident] = s.eventually(stack.incidents, timeout=DEADLINE, what="an incident", logs=logs)
    s.eventually(lambda: dingtalk.cards or None, timeout=DEADLINE, what="the card", logs=logs)
    assert dingtalk.connected.wait(DEADLINE), logs()
    stack.exporter.value, scraped = VALUE, stack.exporter.scrapes
    s.eventually(
        lambda: stack.exporter.scrapes >= scraped + 2 or None,
        timeout=DEADLINE,
        what="the new value scraped",
        logs=logs,
    )

    question = _message("group_text.json", f" why is #{incident['id']} firing? ", "msg-question-1")
    frame = dingtalk.deliver(question)
    assert dingtalk.wait_ack(frame)["code"] == 200, logs()

    def answered() -> list[dict[str, Any]] | None:
        return list(dingtalk.session_posts) or None

    [post] = s.eventually(answered, timeout=DEADLINE, what="the answer in the group", logs=logs)
    text = post["markdown"]["text"].replace("\\", "")  # as a reader sees it, markdown escapes undone
    assert GAUGE in text and f"last {VALUE}" in text, logs()  # the query and what the real Prometheus said
    assert f"/incidents/{incident['id']}" in text and ASKER in post["at"]["atUserIds"]
    [asked, answered_with] = chat_requests(model)
    assert f"why is #{incident['id']} firing?" in asked["messages"][1]["content"]
    assert any(m["role"] == "tool" and f"last {VALUE}" in m["content"] for m in answered_with["messages"])

    # The same message delivered again, a group message that does not mention aiops: no answer.
    dingtalk.wait_ack(dingtalk.deliver(question))
    dingtalk.wait_ack(dingtalk.deliver(_message("group_text.json", "lunch?", "msg-2", isInAtList=False)))
    time.sleep(QUIET)
    assert len(dingtalk.session_posts) == 1 and len(chat_requests(model)) == 2, logs()

    # A stranger's direct message gets a refusal, and no model call.
    stranger = _message("direct_text.json", "status", "msg-3", senderStaffId=STRANGER)
    dingtalk.wait_ack(dingtalk.deliver(stranger))
    s.eventually(
        lambda: len(dingtalk.session_posts) == 2 or None, timeout=DEADLINE, what="a refusal", logs=logs
    )
    assert "chat.askers" in dingtalk.session_posts[-1]["markdown"]["text"]
    assert len(chat_requests(model)) == 2
