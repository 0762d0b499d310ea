"""One chat question answered by the real local model (llama-cpp-python's server with SmolLM2-135M, through the
real openai SDK): the protocol, not the wording — the question reaches the server as delimited data with the
read-only tools offered, the server's answer is the reply, and the thread remembers it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from aiops.chat import Asked
from tests.chat.conftest import Replies
from tests.chat.test_questions import ModelChat
from tests.fakes.prometheus import FakePrometheus
from tests.support.local_model import LOCAL_LLM, LocalModel, Recorder

pytestmark = pytest.mark.timeout(900)


async def test_a_question_is_answered_by_the_local_model(
    app_for: Any, local_model: LocalModel, fake_prometheus: FakePrometheus
) -> None:
    recorder = Recorder(local_model.url).start()
    try:
        llm = {"base_url": recorder.base_url, "api_key": "local", "model": local_model.model, **LOCAL_LLM}
        sections = {
            "llm": llm,
            "prometheus": {"url": fake_prometheus.url},
            "chat": {"askers": {"feishu": ["ou_bob"]}, "max_steps": 2},
            "server": {"language": "en"},
        }
        async with app_for(**sections) as (_, services):
            chat = ModelChat(services, Replies(), 0)
            asked = Asked(
                "feishu", "chatty", "om_1", "ou_bob", "Is the disk of web-1 full?", True, True, "oc_p2p"
            )
            assert await chat.ask(asked) == "queued"
            async with services.engine.connect() as conn:
                outcome, turns = (
                    await conn.execute(
                        text(
                            "SELECT m.outcome, c.turns FROM chat_messages m JOIN conversations c USING (channel)"
                        )
                    )
                ).one()
        exchanges = recorder.take()
    finally:
        recorder.stop()
    assert outcome == "answered", f"{chat.replies.sent}\n--- server log ---\n{local_model.log()}"
    first = exchanges[0].request
    assert {tool["function"]["name"] for tool in first["tools"]} >= {"promql"}
    assert "| Is the disk of web-1 full?" in first["messages"][1]["content"]
    [(_, reply)] = chat.replies.sent
    answered = exchanges[-1].answer["choices"][0]["message"]["content"]
    assert reply["lines"] == [answered.strip()] and answered.strip(), reply
    assert "Is the disk of web-1 full?" in turns
