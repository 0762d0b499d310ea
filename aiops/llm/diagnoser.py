"""The model's diagnosis: prompt, call (or investigation), validated answer, one repair, usage and cost.

What the model proposes is cut down to what the matched runbook allows, and to the parameters an action declares
as coming from the model; everything else is dropped and logged, whatever the evidence said.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiops.i18n import message
from aiops.llm.answer import Answer, AnswerError, answer_schema, parse_answer
from aiops.llm.client import Completion, LlmClient, LlmError
from aiops.llm.prompt import ActionInfo, Prompt, PromptBuilder
from aiops.metrics import Metrics
from aiops.models import Correlation, Diagnosis, Evidence, LlmUsage, Message, ProposedAction, RunbookMatch

log = logging.getLogger("aiops.llm")

ActionLookup = Callable[[str], ActionInfo | None]


class DiagnosisFailed(Exception):
    """No usable diagnosis; `reason` says why to a reader, `usage` is what the attempt cost anyway."""

    def __init__(self, reason: Message, usage: LlmUsage) -> None:
        super().__init__(str(reason))
        self.reason = reason
        self.usage = usage


class Investigation(Protocol):
    """The optional tool-using loop: answers with the final completion, having called `ledger.record` per call."""

    async def run(
        self, prompt: Prompt, ledger: Ledger, deadline: float, correlation: Correlation, runbook: RunbookMatch
    ) -> Completion: ...


@dataclass
class Ledger:
    """Tokens and cost of the calls made for one diagnosis, counted into the metrics as they happen."""

    client: LlmClient
    metrics: Metrics
    # Tokens these calls may spend together; None: the incident's budget (`llm.incident_token_budget`).
    budget: int | None = None
    usage: LlmUsage = field(init=False)

    def __post_init__(self) -> None:
        self.usage = LlmUsage(model=self.client.config.model, local=self.client.config.is_local)

    async def call(
        self, messages: Sequence[Mapping[str, Any]], deadline: float, **options: Any
    ) -> Completion:
        started = time.perf_counter()
        try:
            completion = await self.client.complete(messages, deadline=deadline, **options)
        except LlmError:
            self.metrics.llm_calls.labels("error").inc()
            raise
        finally:
            self.metrics.llm_call_duration.observe(time.perf_counter() - started)
        self.record(completion)
        return completion

    def record(self, completion: Completion) -> None:
        tokens = completion.usage
        cost = self.client.cost(tokens)
        spent = self.usage.cost
        self.usage = dataclasses.replace(
            self.usage,
            calls=self.usage.calls + 1,
            prompt_tokens=self.usage.prompt_tokens + tokens.prompt_tokens,
            completion_tokens=self.usage.completion_tokens + tokens.completion_tokens,
            cost=None if cost is None or spent is None else spent + cost,
        )
        self.metrics.llm_calls.labels("ok").inc()
        self.metrics.llm_tokens.labels("prompt").inc(tokens.prompt_tokens)
        self.metrics.llm_tokens.labels("completion").inc(tokens.completion_tokens)
        if cost is None:  # not zero: what these tokens cost is not known
            self.metrics.llm_unpriced_tokens.labels("prompt").inc(tokens.prompt_tokens)
            self.metrics.llm_unpriced_tokens.labels("completion").inc(tokens.completion_tokens)
        else:
            self.metrics.llm_cost.inc(cost)

    @property
    def exhausted(self) -> bool:
        spent = self.usage.prompt_tokens + self.usage.completion_tokens
        return spent >= (self.budget or self.client.config.incident_token_budget)


class LlmDiagnoser:
    def __init__(
        self,
        client: LlmClient,
        prompts: PromptBuilder,
        metrics: Metrics,
        actions: ActionLookup,
        investigation: Investigation | None = None,
    ) -> None:
        self._client = client
        self._prompts = prompts
        self._metrics = metrics
        self._actions = actions
        self._investigation = investigation
        self.last_prompt: Prompt | None = None  # for `aiops replay` and the evaluation suite

    async def diagnose(
        self, correlation: Correlation, runbook: RunbookMatch, evidence: Sequence[Evidence]
    ) -> Diagnosis:
        deadline = time.monotonic() + self._client.config.incident_deadline
        allowed = self.allowed_actions(runbook)
        prompt = self._prompts.build(correlation, runbook, evidence, allowed)
        self.last_prompt = prompt
        ledger = Ledger(self._client, self._metrics)
        try:
            schema = answer_schema(list(prompt.evidence_ids), [info.id for info in allowed])
            answer = await self._answer(prompt, schema, ledger, deadline, correlation, runbook)
        except (LlmError, AnswerError) as error:
            raise DiagnosisFailed(_reason(error), ledger.usage) from None
        return _diagnosis(answer, prompt, runbook, allowed, ledger.usage)

    def allowed_actions(self, runbook: RunbookMatch) -> list[ActionInfo]:
        """The runbook's actions that exist in the catalog; a runbook cannot allow what was never reviewed."""
        found = [(action_id, self._actions(action_id)) for action_id in runbook.actions]
        for action_id, info in found:
            if info is None:
                log.warning(
                    "runbook %s lists action %r, which is not in the catalog", runbook.path, action_id
                )
        return [info for _, info in found if info is not None]

    async def _answer(
        self,
        prompt: Prompt,
        schema: Mapping[str, Any],
        ledger: Ledger,
        deadline: float,
        correlation: Correlation,
        runbook: RunbookMatch,
    ) -> Answer:
        if self._investigation is not None:
            completion = await self._investigation.run(prompt, ledger, deadline, correlation, runbook)
        else:
            completion = await ledger.call(prompt.messages, deadline, schema=schema)
        try:
            return parse_answer(completion.content)
        except AnswerError as error:
            self._metrics.llm_calls.labels("invalid").inc()
            log.warning("the model's answer is not valid (%s); asking once more", error)
            second = await ledger.call(self._repair(prompt, completion, error), deadline, schema=schema)
        try:
            return parse_answer(second.content)
        except AnswerError as error:
            self._metrics.llm_calls.labels("invalid").inc()
            raise AnswerError([f"still not valid after one repair: {error}"]) from None

    def _repair(self, prompt: Prompt, completion: Completion, error: AnswerError) -> list[Mapping[str, Any]]:
        """The conversation that asks once more. An answer cut off at the token cap is not sent back: a small
        model shown its own runaway text (a sentence repeated until the cap) tends to write it again."""
        if completion.finish_reason == "length":
            cap = self._client.config.max_completion_tokens
            cut = f"it was cut off at {cap} tokens (llm.max_completion_tokens) before it was complete"
            return [*prompt.messages, {"role": "user", "content": self._prompts.repair([cut], short=True)}]
        return [
            *prompt.messages,
            _assistant(completion),
            {"role": "user", "content": self._prompts.repair(error.problems)},
        ]


def _assistant(completion: Completion) -> Mapping[str, Any]:
    """The assistant turn as the model wrote it, reasoning included (MiniMax asks for it back)."""
    return dict(completion.message) or {"role": "assistant", "content": completion.content}


def _reason(error: Exception) -> Message:
    """Why there is no model diagnosis, for the reader; what went wrong in the call or the answer is the detail."""
    if isinstance(error, AnswerError):
        return message("llm_answer_unusable", detail=error)
    return message("llm_no_answer", detail=error)


def _diagnosis(
    answer: Answer, prompt: Prompt, runbook: RunbookMatch, allowed: Sequence[ActionInfo], usage: LlmUsage
) -> Diagnosis:
    permitted = {info.id: info for info in allowed}
    actions: list[ProposedAction] = []
    dropped: list[str] = []
    for proposed in answer.actions:
        info = permitted.get(proposed.id)
        if info is None:
            where = runbook.path or "no runbook"
            dropped.append(f"{proposed.id}: not an action the runbook allows ({where})")
            log.warning("dropped the model's proposal %r: not allowed by %s", proposed.id, where)
            continue
        params = {key: value for key, value in proposed.params.items() if key in info.proposal_params}
        actions.append(ProposedAction(info.id, proposed.reason, params))
    refs = tuple(
        f"{ref}: {prompt.evidence_ids[ref].title}"
        for ref in dict.fromkeys(answer.evidence)
        if ref in prompt.evidence_ids
    )
    return Diagnosis(
        source="llm",
        summary=answer.summary,
        probable_cause=answer.probable_cause,
        confidence=answer.confidence,
        next_steps=tuple(answer.next_steps),
        impact=answer.impact or None,
        evidence_refs=refs,
        actions=tuple(actions),
        dropped_actions=tuple(dropped),
        coerced=answer.coerced,
        usage=usage,
    )
