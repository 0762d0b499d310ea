"""What the chat flows share: a fake MiniMax that diagnoses alerts and, asked in chat, queries the toggle gauge in
the stack's real Prometheus before it answers."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.minimax import KEY, FakeMiniMax, Reply
from tests.llm.conftest import GOOD
from tests.support.e2e import GAUGE

ASKING = "answering a question someone asked in chat"  # what the chat prompt's system message says
VALUE = 42  # what the exporter reads when the question is asked: only a real query finds it


def chatting_model() -> FakeMiniMax:
    """A fake model: a diagnosis for the triage; for a chat question, first a PromQL call of the gauge, then an
    answer quoting what the tool found."""

    def respond(request: dict[str, Any]) -> Reply:
        messages = request["messages"]
        if ASKING not in messages[0]["content"]:
            return Reply(content=json.dumps(GOOD))
        found = [m["content"] for m in messages if m["role"] == "tool"]
        if not found:
            return Reply(tool_calls=[("promql", {"query": GAUGE, "minutes": 5})])
        return Reply(content=f"The toggle is on; the query answered: {found[0].splitlines()[1][:200]}")

    model = FakeMiniMax().start()
    model.responder = respond
    return model


def llm_section(model: FakeMiniMax) -> dict[str, Any]:
    return {
        "api_key": KEY,
        "base_url": model.base_url,
        "provider": "minimax",
        "backoff": 0.05,
        "call_timeout": 5,
    }


def chat_requests(model: FakeMiniMax) -> list[dict[str, Any]]:
    return [r for r in model.requests if ASKING in r["messages"][0]["content"]]
