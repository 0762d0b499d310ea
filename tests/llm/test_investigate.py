"""The investigation loop: the model calls read-only tools against a fake Prometheus, within its budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA
from tests.fakes.minimax import FakeMiniMax, Reply
from tests.fakes.prometheus import FakePrometheus
from tests.llm.conftest import GOOD, llm
from tests.support.app import AUTH

DISK = 'node_filesystem_avail_bytes{instance="web-1:9100"}'


async def investigate(
    app_for: Any, runbooks: Path, minimax: FakeMiniMax, prometheus: FakePrometheus, **llm_: Any
) -> Any:
    async with app_for(
        llm=llm(minimax, investigate=True, **llm_),
        runbooks={"dir": str(runbooks)},
        prometheus={"url": prometheus.url},
        server={"language": "en"},
    ) as (client, services):
        answer = await client.post(
            "/webhook/alertmanager", content=(DATA / "firing.json").read_bytes(), headers=AUTH
        )
        return await services.pipeline.run(int(answer.json()["delivery"]))


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [message["content"] for message in request["messages"] if message["role"] == "tool"]


@pytest.mark.parametrize("split", [True, False], ids=["reasoning_split", "think"])
async def test_the_model_queries_prometheus_then_answers(
    app_for: Any, runbooks: Path, fake_minimax: FakeMiniMax, fake_prometheus: FakePrometheus, split: bool
) -> None:
    fake_minimax.script(
        Reply(
            tool_calls=[
                ("promql", {"query": DISK, "minutes": 30}),
                ("runbook", {"name": "HostOutOfDiskSpace"}),
            ]
        ),
        Reply(content=json.dumps(GOOD)),
    )
    triage = await investigate(app_for, runbooks, fake_minimax, fake_prometheus, reasoning_split=split)
    assert triage.diagnosis.source == "llm" and triage.diagnosis.usage.calls == 2
    first, second = fake_minimax.requests
    assert {tool["function"]["name"] for tool in first["tools"]} == {"promql", "runbook", "past_incidents"}
    assert any(request["query"] == DISK for request in fake_prometheus.requests)
    promql, runbook = tool_messages(second)
    assert promql.startswith("<<<DATA ") and "min 10, max 95" in promql and "rising" in promql
    assert "Host disk almost full" in runbook and "Vacuum the journal" in runbook
    assistant = next(message for message in second["messages"] if message["role"] == "assistant")
    assert assistant["tool_calls"][0]["function"]["name"] == "promql"
    assert ("reasoning_details" in assistant) if split else ("<think>" in assistant["content"])


async def test_an_identical_call_is_refused_and_the_last_step_offers_no_tools(
    app_for: Any, runbooks: Path, fake_minimax: FakeMiniMax, fake_prometheus: FakePrometheus
) -> None:
    again = Reply(tool_calls=[("promql", {"query": "up"})])
    fake_minimax.script(
        again, again, Reply(tool_calls=[("rm", {"path": "/"})]), Reply(content=json.dumps(GOOD))
    )
    triage = await investigate(app_for, runbooks, fake_minimax, fake_prometheus, max_steps=4)
    assert triage.diagnosis.source == "llm"
    requests = fake_minimax.requests
    assert len(requests) == 4
    assert "identical to an earlier call" in tool_messages(requests[2])[-1]
    assert "there is no tool named 'rm'" in tool_messages(requests[3])[-1]
    assert [("tools" in request) for request in requests] == [True, True, True, False]
    assert sum(request["query"] == "up" for request in fake_prometheus.requests) == 1


async def test_a_tool_result_is_capped(
    app_for: Any, runbooks: Path, fake_minimax: FakeMiniMax, fake_prometheus: FakePrometheus
) -> None:
    fake_minimax.script(
        Reply(tool_calls=[("runbook", {"name": "HostOutOfDiskSpace.md"})]), Reply(content=json.dumps(GOOD))
    )
    await investigate(app_for, runbooks, fake_minimax, fake_prometheus, tool_output_cap=200)
    [result] = tool_messages(fake_minimax.requests[1])
    body = result.split("\n", 1)[1].rsplit("\n", 1)[0]
    assert len(body.replace("| ", "")) <= 200 + body.count("\n") and body.endswith("…")
