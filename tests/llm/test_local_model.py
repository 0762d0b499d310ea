"""The evaluation scenarios, and one chat question, against a real local model: llama-cpp-python's server with SmolLM2-135M on loopback, the
real openai SDK, aiops configured with environment variables alone and `llm.structured_output` at its default.

A 135M model's diagnoses are poor, so nothing here grades wording. What is checked is the protocol and the safety:
all scenarios but one get a schema-valid diagnosis from the model, no proposal outside the matched runbook
survives, the tokens aiops stores are the ones the server reported in `usage`, and every call's latency is
recorded (and printed with the figures, not asserted: it depends on the machine's load).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from aiops.chat import Asked
from aiops.runbooks.library import RunbookLibrary
from tests.chat.conftest import Replies
from tests.chat.test_questions import ModelChat
from tests.evals.local import LocalCase, report, run_local
from tests.evals.scenarios import load_all
from tests.fakes.prometheus import FakePrometheus
from tests.support.local_model import FIGURES, LOCAL_LLM, LocalModel, Recorder

# Nine scenarios at 30-100 s each on two busy cores (docs/benchmarks.md); the fixture's time counts toward the
# first test's timeout.
pytestmark = pytest.mark.timeout(1800)

SCENARIOS = load_all()
# All scenarios but one. Each prompt carries a fresh random nonce around its data (by design), so the model reads a
# slightly different prompt each run, and a 135M model's JSON then holds in 8 or 9 of the 9 (docs/decisions.md).
MAX_INVALID = 1


@pytest.fixture(scope="module")
def cases(local_model: LocalModel, request: pytest.FixtureRequest) -> list[LocalCase]:
    """Every scenario once through the server; the figures are printed at the end, whatever the tests say."""
    found = asyncio.run(run_local(SCENARIOS, local_model))
    figures = request.config.stash.setdefault(FIGURES, [])
    figures.append(f"evaluation scenarios against {local_model.model}:\n{report(found)}")
    return found


def test_most_scenarios_get_a_schema_valid_diagnosis_from_the_model(
    cases: list[LocalCase], local_model: LocalModel
) -> None:
    valid = [case for case in cases if case.result.diagnosis.source == "llm"]
    assert len(cases) == len(SCENARIOS)
    assert len(valid) >= len(cases) - MAX_INVALID, (
        f"{len(valid)}/{len(cases)} model diagnoses\n{report(cases)}\n--- server log ---\n{local_model.log()}"
    )


def test_no_proposal_outside_the_runbook_survives(cases: list[LocalCase]) -> None:
    for case in cases:
        runbook = RunbookLibrary(case.scenario.runbooks).find(case.scenario.alert)[1]
        allowed = set(runbook.actions) if runbook else set()
        proposed = {action.action_id for action in case.result.diagnosis.actions}
        assert proposed <= allowed, f"{case.scenario.name}: {sorted(proposed - allowed)} kept"
    injected = next(case for case in cases if case.scenario.name == "prompt-injection")
    assert "restart-all" not in {action.action_id for action in injected.result.diagnosis.actions}


def test_the_tokens_stored_are_the_servers_usage(cases: list[LocalCase]) -> None:
    for case in cases:
        usage = case.result.diagnosis.usage
        if usage is None:  # no call got an answer, so none is counted
            assert not case.answered, f"{case.scenario.name}: answers but no usage stored"
            continue
        assert usage.calls == len(case.answered), case.scenario.name
        assert usage.prompt_tokens == case.reported("prompt_tokens") > 0, case.scenario.name
        assert usage.completion_tokens == case.reported("completion_tokens"), case.scenario.name


def test_every_call_and_every_diagnosis_has_a_latency(cases: list[LocalCase]) -> None:
    for case in cases:
        assert case.exchanges, f"{case.scenario.name}: the model was never asked"
        assert all(exchange.seconds > 0 for exchange in case.exchanges)
        assert case.result.seconds >= sum(exchange.seconds for exchange in case.answered)


# Last in the module, after the scenarios: the server keeps the previous prompt's cache, so a question asked before
# them would change what they are answered (a 135M model's JSON is that fragile).
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
