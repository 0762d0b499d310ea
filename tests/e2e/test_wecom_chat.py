"""Asking aiops through the WeCom app, with real processes: a real Prometheus fires, `aiops serve` announces the
incident, and text messages WeCom posts to `POST /callbacks/wecom` (encrypted and signed) are answered with a
markdown message to the writer — from a query against the real Prometheus, once however often WeCom retries, and
only for the people `chat.askers` lists."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.fakes.minimax import FakeMiniMax
from tests.fakes.wecom import AES_KEY, AGENT_ID, CALLBACK_TOKEN, CORP_ID, SECRET, Callbacks, FakeWeCom
from tests.support import stack as s
from tests.support.chat import VALUE, chat_requests, llm_section
from tests.support.e2e import DEADLINE, GAUGE, QUIET, TOKEN, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ASKER, STRANGER = "zhangsan", "wangwu"


def _send(stack: Stack, sealed: tuple[dict[str, str], bytes]) -> httpx.Response:
    query, body = sealed
    url = f"{stack.aiops.url}/callbacks/wecom"
    return s.http().post(url, params=query, content=body, headers={"Content-Type": "text/xml"})


def test_a_question_is_answered_from_prometheus_once_and_strangers_are_refused(
    start_stack: Callable[..., Stack], fake_wecom: FakeWeCom, model: FakeMiniMax
) -> None:
    stack = start_stack(
        TOKEN,
        channels={
            "wecom": {
                "corp_id": CORP_ID,
                "agent_id": AGENT_ID,
                "corp_secret": SECRET,
                "touser": [ASKER],
                "callback_token": CALLBACK_TOKEN,
                "encoding_aes_key": AES_KEY,
                "base_url": fake_wecom.url,
            }
        },
        llm=llm_section(model),
        chat={"askers": {"wecom": [ASKER]}},
        server={"language": "en"},
    )

    def logs() -> str:
        return (
            s.report([("markdown to the asker", "\n---\n".join(fake_wecom.markdown_to(ASKER)))])
            + stack.logs()
        )

    [incident] = s.eventually(stack.incidents, timeout=DEADLINE, what="an incident", logs=logs)
    stack.exporter.value, scraped = VALUE, stack.exporter.scrapes
    s.eventually(
        lambda: stack.exporter.scrapes >= scraped + 2 or None, timeout=DEADLINE, what="a scrape", logs=logs
    )
    before = len(fake_wecom.markdown_to(ASKER))

    callbacks = Callbacks()
    question = callbacks.text(ASKER, f"why is #{incident['id']} firing?", msg_id="7312345678901234567")
    answered = _send(stack, question)
    assert answered.status_code == 200 and answered.text == "", answered.text

    def answers() -> list[str] | None:
        return fake_wecom.markdown_to(ASKER)[before:] or None

    [answer] = s.eventually(answers, timeout=DEADLINE, what="the answer", logs=logs)
    shown = answer.replace("\\", "")
    assert GAUGE in shown and f"last {VALUE}" in shown and f"/incidents/{incident['id']}" in shown, logs()

    # WeCom retries a callback it thinks went unanswered, with the same MsgId: answered once.
    assert _send(stack, question).status_code == 200
    time.sleep(QUIET)
    assert len(fake_wecom.markdown_to(ASKER)) == before + 1 and len(chat_requests(model)) == 2, logs()

    # Someone chat.askers does not list is told so, and no model is asked.
    assert _send(stack, callbacks.text(STRANGER, "status")).status_code == 200
    refusal = s.eventually(
        lambda: fake_wecom.markdown_to(STRANGER) or None, timeout=DEADLINE, what="a refusal", logs=logs
    )
    assert "chat.askers" in refusal[-1] and len(chat_requests(model)) == 2
