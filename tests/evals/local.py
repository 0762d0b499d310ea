"""The evaluation scenarios through a real local model, with every exchange with the server kept.

aiops is configured as an air-gapped team would: `MINIMAX_BASE_URL`, `MINIMAX_API_KEY` and `MINIMAX_MODEL` in the
environment, `llm.structured_output` at its default. A `Recorder` between aiops and the server keeps what the
server answered, so that the tokens aiops stores can be checked against the server's own `usage`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.evals.harness import CaseResult, run_case
from tests.evals.scenarios import Scenario
from tests.support.local_model import LOCAL_LLM, Exchange, LocalModel, Recorder


@dataclass(frozen=True)
class LocalCase:
    scenario: Scenario
    result: CaseResult
    exchanges: tuple[Exchange, ...]  # every chat completion of the case, refused ones included

    @property
    def answered(self) -> list[Exchange]:
        return [exchange for exchange in self.exchanges if exchange.status == 200]

    def reported(self, field: str) -> int:
        """A usage field summed over the answers the server gave."""
        return sum(int(exchange.usage.get(field) or 0) for exchange in self.answered)


async def run_local(
    scenarios: Sequence[Scenario], model: LocalModel, llm: Mapping[str, Any] = LOCAL_LLM
) -> list[LocalCase]:
    """Each scenario in turn (a 135M model on two cores answers one call at a time anyway)."""
    recorder = Recorder(model.url).start()
    try:
        cases = []
        for scenario in scenarios:
            result = await run_case(scenario, llm, environ=model.environment(recorder.base_url))
            cases.append(LocalCase(scenario, result, tuple(recorder.take())))
        return cases
    finally:
        recorder.stop()


def report(cases: Sequence[LocalCase]) -> str:
    """A table for the terminal and docs/benchmarks.md."""
    lines = [
        "| scenario | model diagnosis | response_format tried | calls | first prompt, estimated | prompt tokens "
        "| completion tokens | seconds | dropped proposals |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        diagnosis = case.result.diagnosis
        tried = " → ".join(f"{e.response_format} {e.status}" for e in case.exchanges) or "—"
        valid = "yes" if diagnosis.source == "llm" else f"no: {str(diagnosis.unavailable or '')[:120]}"
        lines.append(
            f"| {case.scenario.name} | {valid} | {tried} | {len(case.answered)} | {case.result.prompt_tokens} "
            f"| {case.reported('prompt_tokens')} "
            f"| {case.reported('completion_tokens')} | {case.result.seconds:.1f} | {len(diagnosis.dropped_actions)} |"
        )
    valid = sum(case.result.diagnosis.source == "llm" for case in cases)
    lines.append(
        f"| **all** | {valid}/{len(cases)} | | {sum(len(c.answered) for c in cases)} "
        f"| {sum(c.result.prompt_tokens for c in cases)} "
        f"| {sum(c.reported('prompt_tokens') for c in cases)} | {sum(c.reported('completion_tokens') for c in cases)} "
        f"| {sum(c.result.seconds for c in cases):.1f} | {sum(len(c.result.diagnosis.dropped_actions) for c in cases)} |"
    )
    return "\n".join(lines)
