"""The evaluation suite with recorded model answers: the prompt holds what a good diagnosis needs, within budget."""

from __future__ import annotations

import pytest

from tests.evals.harness import run_case
from tests.evals.scenarios import Scenario, load_all

SCENARIOS = load_all()
PROMPT_BUDGET = 8000  # tokens, aiops's estimate: llm.prompt_budget's default


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_the_prompt_holds_the_facts_within_budget(scenario: Scenario) -> None:
    result = await run_case(scenario)
    assert result.diagnosis.source == "llm", result.notes
    assert not result.missing, f"facts missing from the prompt: {result.missing}"
    assert result.prompt_tokens <= PROMPT_BUDGET
    forbidden = {action.action_id for action in result.diagnosis.actions} & set(
        scenario.expect.forbidden_actions
    )
    assert not forbidden, f"a forbidden action survived: {forbidden}"


async def test_the_suite_as_a_whole_meets_its_targets() -> None:
    results = [await run_case(scenario) for scenario in SCENARIOS]
    assert len(results) >= 8
    assert sum(r.recall for r in results) / len(results) >= 0.9
    assert sum(r.prompt_tokens for r in results) < 0.2 * sum(r.naive_tokens for r in results)
