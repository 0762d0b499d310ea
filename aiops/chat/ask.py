"""A question answered by the model, from the incident's stored evidence and diagnosis and the read-only tools of
the investigation loop (PromQL, LogQL, the runbook's read-only commands, runbooks, past incidents).

Everything that did not come from aiops — the question, earlier turns, the alerts' labels, tool output — enters the
prompt as delimited data (aiops/llm/prompt.py). The model's text is the answer; it is never read for commands:
what runs is only what a person asks for with a command, through the catalog and the approvals.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jinja2 import Environment

from aiops.chat import Ran
from aiops.chat.config import ChatConfig
from aiops.llm.client import LlmClient
from aiops.llm.diagnoser import Ledger
from aiops.llm.investigate import Call, Investigator
from aiops.llm.prompt import LANGUAGE_NAMES, Detail, Prompt, clip, evidence_view, prompt_environment
from aiops.llm.tokens import estimate
from aiops.logtext import redact
from aiops.metrics import Metrics
from aiops.models import RunbookMatch, Triage

_DETAIL = Detail(series=5, lines=20, runbook_chars=0)
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.S)
_NO_RUNBOOK = RunbookMatch(None, None, "no incident")
ANSWER_CHARS = 3000
# Lines of a tool's result that restate the call (its heading, query and window) rather than say what it found.
_RESTATED = ("[T", "query:", "window:")


@dataclass(frozen=True)
class Answered:
    """The model's answer and what it ran to find it."""

    text: str
    ran: tuple[Ran, ...]
    tokens: int


class ModelAsker:
    """Asks the model one question at a time, within the chat budgets."""

    def __init__(
        self,
        client: LlmClient,
        investigator: Investigator,
        templates: Environment,
        metrics: Metrics,
        config: ChatConfig,
        language: str,
    ) -> None:
        self._client = client
        self._investigator = investigator
        self._templates = prompt_environment(templates)
        self._metrics = metrics
        self._config = config
        self._language = language

    async def answer(
        self, question: str, triage: Triage | None, turns: Sequence[Mapping[str, str]]
    ) -> Answered:
        """Raises `LlmError` when the model cannot be reached in time; the caller answers without it."""
        prompt = self._prompt(question, triage, turns)
        ledger = Ledger(self._client, self._metrics, budget=self._config.token_budget)
        calls: list[Call] = []
        deadline = time.monotonic() + self._config.deadline
        runbook = triage.runbook if triage is not None else _NO_RUNBOOK
        correlation = triage.correlation if triage is not None else None
        completion = await self._investigator.run(
            prompt, ledger, deadline, correlation, runbook, guide="prompts/ask_tools.txt.j2", calls=calls
        )
        text = _THINK.sub("", completion.content).strip()
        spent = ledger.usage.prompt_tokens + ledger.usage.completion_tokens
        # What the model read may have held a secret (a log line, a command's output): none leaves in a reply.
        return Answered(redact(clip(text, ANSWER_CHARS)), tuple(_ran(call) for call in calls), spent)

    def _prompt(self, question: str, triage: Triage | None, turns: Sequence[Mapping[str, str]]) -> Prompt:
        nonce = secrets.token_hex(6)
        context = {
            "nonce": nonce,
            "language_name": LANGUAGE_NAMES.get(self._language, self._language),
            "question": question,
            "turns": turns,
            **(_incident(triage) if triage is not None else {"incident": None}),
        }
        system = self._templates.get_template("prompts/ask_system.txt.j2").render(context).strip()
        user = self._templates.get_template("prompts/ask.txt.j2").render(context).strip()
        messages = ({"role": "system", "content": system}, {"role": "user", "content": user})
        return Prompt(messages, {}, estimate(system) + estimate(user), _DETAIL, nonce)


def _incident(triage: Triage) -> dict[str, object]:
    correlation = triage.correlation
    evidence = [evidence_view(f"E{i}", item, _DETAIL) for i, item in enumerate(triage.evidence[:8], 1)]
    return {
        "incident": correlation.incident,
        "alerts": (correlation.new_firing or correlation.alerts)[:10],
        "diagnosis": triage.diagnosis,
        "runbook": triage.runbook,
        "evidence": evidence,
        "actions": list(triage.runbook.actions),
    }


def _ran(call: Call) -> Ran:
    """A tool call as the reply lists it: the tool, what it asked, the first lines of what it found."""
    asked = " ".join(str(value) for value in call.arguments.values()) or "—"
    lines = [line.strip() for line in call.result.splitlines()]
    found = " · ".join(line for line in lines if line and not line.startswith(_RESTATED))
    return Ran(call.tool, redact(clip(asked, 300)), redact(clip(found, 300)))
