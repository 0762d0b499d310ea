"""The diagnosis prompt: Jinja templates under `templates/prompts/`, fitted to a token budget.

Everything that comes from monitored systems (labels, annotations, log lines, command output) is rendered inside
`<<<DATA nonce` … `<<<END nonce` blocks with every line prefixed by `| `: a line cannot end the block early because
it cannot know the per-prompt nonce, and the system prompt tells the model that such text is data, not instruction.
When the whole prompt would exceed the budget, evidence is shown in less detail (fewer series, fewer log lines, a
shorter runbook) rather than cut off at an arbitrary character.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Environment

from aiops.i18n import english
from aiops.llm.answer import SCHEMA_HINT
from aiops.llm.tokens import estimate
from aiops.models import Correlation, Evidence, RunbookMatch, StageError
from aiops.sources.history import rank, remembered

LANGUAGE_NAMES = {"zh-CN": "Simplified Chinese (zh-CN)", "en": "English"}
MAX_EVIDENCE = 30
MAX_ALERTS = 10


@dataclass(frozen=True)
class Detail:
    """How much of each evidence item a prompt shows."""

    series: int
    lines: int
    runbook_chars: int


# From most to least detailed; the first level whose prompt fits the budget is used.
LEVELS = (
    Detail(series=5, lines=40, runbook_chars=6000),
    Detail(series=3, lines=20, runbook_chars=3000),
    Detail(series=2, lines=10, runbook_chars=1500),
    Detail(series=1, lines=5, runbook_chars=600),
    Detail(series=1, lines=2, runbook_chars=300),
)


@dataclass(frozen=True)
class ActionInfo:
    """A catalog action the runbook allows, as the model is told about it."""

    id: str
    risk: str
    description: str
    proposal_params: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prompt:
    messages: tuple[Mapping[str, str], ...]
    evidence_ids: Mapping[str, Evidence]  # "E1" → the item shown under that id
    tokens: int  # estimated
    detail: Detail
    nonce: str

    @property
    def text(self) -> str:
        return "\n\n".join(message["content"] for message in self.messages)


class PromptBuilder:
    def __init__(self, templates: Environment, *, budget: int, language: str) -> None:
        self._templates = prompt_environment(templates)
        self._budget = budget
        self._language = language

    def build(
        self,
        correlation: Correlation,
        runbook: RunbookMatch,
        evidence: Sequence[Evidence],
        actions: Sequence[ActionInfo],
        problems: Sequence[StageError] = (),
    ) -> Prompt:
        nonce = secrets.token_hex(6)
        shown = tuple(evidence[:MAX_EVIDENCE])
        ids = {f"E{index}": item for index, item in enumerate(shown, start=1)}
        prompt = None
        for detail in LEVELS:
            context = self._context(correlation, runbook, ids, actions, problems, detail, nonce)
            context["omitted_evidence"] = len(evidence) - len(shown)
            prompt = self._render(context, ids, detail, nonce)
            if prompt.tokens <= self._budget:
                break
        assert prompt is not None
        return prompt

    def _render(
        self, context: dict[str, Any], ids: Mapping[str, Evidence], detail: Detail, nonce: str
    ) -> Prompt:
        system = self._templates.get_template("prompts/system.txt.j2").render(context).strip()
        user = self._templates.get_template("prompts/incident.txt.j2").render(context).strip()
        messages = ({"role": "system", "content": system}, {"role": "user", "content": user})
        return Prompt(messages, ids, estimate(system) + estimate(user), detail, nonce)

    def _context(
        self,
        correlation: Correlation,
        runbook: RunbookMatch,
        ids: Mapping[str, Evidence],
        actions: Sequence[ActionInfo],
        problems: Sequence[StageError],
        detail: Detail,
        nonce: str,
    ) -> dict[str, Any]:
        alerts = correlation.new_firing or correlation.alerts
        evidence = list(ids.values())
        return {
            # What worked on this target before comes first, and its action heads the allowed ones.
            "remembered": [english(line) for line in remembered(evidence)],
            "nonce": nonce,
            "schema": SCHEMA_HINT,
            "language_name": LANGUAGE_NAMES.get(self._language, self._language),
            "incident": correlation.incident,
            "change": correlation.change,
            "alerts": alerts[:MAX_ALERTS],
            "omitted_alerts": max(0, len(alerts) - MAX_ALERTS),
            "runbook": runbook,
            "body": clip(runbook.body.strip(), detail.runbook_chars),
            "actions": sorted(actions, key=lambda action: rank(action.id, evidence)),
            "evidence": [evidence_view(item_id, item, detail) for item_id, item in ids.items()],
            "problems": [problem for problem in problems if problem.stage != "diagnose"],
        }

    def repair(self, problems: Sequence[str], *, short: bool = False) -> str:
        """The message asking once more; `short` also asks for brief texts (after an answer that ran too long)."""
        template = self._templates.get_template("prompts/repair.txt.j2")
        return template.render(problems=problems, short=short).strip()


def evidence_view(item_id: str, item: Evidence, detail: Detail) -> dict[str, Any]:
    """One evidence item as `_evidence.txt.j2` shows it, cut to `detail`."""
    return {
        "id": item_id,
        "source": item.source,
        "title": english(item.title),
        "query": item.query,
        "window_start": item.window_start,
        "window_end": item.window_end,
        "error": english(item.error) or None,
        "series": item.series[: detail.series],
        "omitted_series": item.omitted_series + max(0, len(item.series) - detail.series),
        "lines": [english(line) for line in item.lines[: detail.lines]],
        "omitted_lines": max(0, len(item.lines) - detail.lines),
    }


def prompt_environment(templates: Environment) -> Environment:
    """The package's template environment with the filters prompts need (no HTML escaping of JSON)."""
    environment = templates.overlay()
    environment.filters.update(clip=clip, quote=quote, pairs=pairs, clock=clock, english=english)
    return environment


def clip(text: object, limit: int) -> str:
    value = str(text)
    return value if len(value) <= limit else value[: max(0, limit - 1)] + "…"


def quote(value: object) -> str:
    return json.dumps(str(value), ensure_ascii=False)


def pairs(items: Sequence[tuple[str, str]]) -> str:
    """Label pairs as PromQL writes them, each value a quoted string: {job="node", instance="web-1:9100"}."""
    return "{" + ", ".join(f"{key}={quote(value)}" for key, value in items) + "}"


def clock(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%H:%M UTC")
