"""The investigation loop (`llm.investigate: true`): the model may look further before it answers.

It calls read-only tools — PromQL and LogQL queries, catalog commands with `risk: read` on the alert's host, a
runbook, past incidents — within a step budget, a per-result size cap and the diagnosis's token budget. A call
identical to an earlier one is refused (the model already has that answer), and the last step offers no tools, so
the loop always ends in an answer. Tool results are data, delimited like the rest of the evidence.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment

from aiops.llm.client import Completion
from aiops.llm.diagnoser import Ledger
from aiops.llm.prompt import Detail, Prompt, clip, evidence_view, prompt_environment
from aiops.models import Alert, Correlation, Evidence, RunbookMatch, RunbookQuery

log = logging.getLogger("aiops.llm")

# Runs one query of a source for the incident: (query, the alert's start, where the query came from) → evidence.
QueryRunner = Callable[[RunbookQuery, datetime, str], Awaitable[Evidence]]
CommandRunner = Callable[[RunbookQuery, Alert, str], Awaitable[Evidence]]
RunbookReader = Callable[[str], Awaitable[str | None]]
PastIncidents = Callable[[Correlation, RunbookMatch], Awaitable[Sequence[Evidence]]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: Mapping[str, Any]  # JSON Schema of the arguments

    def schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def _params(required: Sequence[str], **properties: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_TOOL_DETAIL = Detail(series=10, lines=60, runbook_chars=0)
_WHERE = "investigation"
_TOOL_DETAIL = Detail(series=10, lines=60, runbook_chars=0)
_MINUTES = {
    "type": "integer",
    "minimum": 1,
    "maximum": 1440,
    "description": "how far back from the alert's end",
}
TOOLS = {
    "promql": Tool(
        "promql",
        "Evaluate a PromQL expression over a time range; answers with per-series min/max/mean/last/trend.",
        _params(["query"], query={"type": "string"}, minutes=_MINUTES),
    ),
    "logql": Tool(
        "logql",
        "Run a LogQL query against Loki; answers with log lines folded into templates with counts.",
        _params(["query"], query={"type": "string"}, minutes=_MINUTES),
    ),
    "command": Tool(
        "command",
        "Run a read-only catalog command (risk: read) on the alert's host; answers with its output.",
        _params(["action_id"], action_id={"type": "string"}),
    ),
    "runbook": Tool(
        "runbook",
        "Read a runbook by file name or alert name.",
        _params(["name"], name={"type": "string"}),
    ),
    "past_incidents": Tool(
        "past_incidents",
        "The last incidents of this alert on this target, with their diagnosis.",
        _params([]),
    ),
}


@dataclass(frozen=True)
class Call:
    """One tool call of an investigation: the tool, its arguments as the model gave them, and what it answered
    (before it was delimited as data)."""

    tool: str
    arguments: Mapping[str, Any]
    result: str


@dataclass(frozen=True)
class Toolbox:
    """What the tools reach; a missing source leaves its tool out."""

    promql: QueryRunner | None = None
    logql: QueryRunner | None = None
    command: CommandRunner | None = None
    runbook: RunbookReader | None = None
    past_incidents: PastIncidents | None = None

    def available(self) -> list[Tool]:
        return [tool for name, tool in TOOLS.items() if getattr(self, name) is not None]


class Investigator:
    def __init__(self, toolbox: Toolbox, templates: Environment, *, max_steps: int, output_cap: int) -> None:
        self._toolbox = toolbox
        self._templates = prompt_environment(templates)
        self._max_steps = max_steps
        self._cap = output_cap

    async def run(
        self,
        prompt: Prompt,
        ledger: Ledger,
        deadline: float,
        correlation: Correlation | None,
        runbook: RunbookMatch,
        *,
        guide: str = "prompts/investigate.txt.j2",
        calls: list[Call] | None = None,
    ) -> Completion:
        """The model's answer after at most `max_steps` rounds of tool calls. `guide` is the template telling it
        how to use them and how to answer; `calls`, when given, receives every call made, for the reader. Without
        a `correlation` (a question about no incident) queries end now and no command can run."""
        available = [
            tool
            for tool in self._toolbox.available()
            if correlation is not None or tool.name not in ("command", "past_incidents")
        ]
        tools = [tool.schema() for tool in available]
        told = self._templates.get_template(guide).render(steps=self._max_steps, tools=available)
        messages: list[Mapping[str, Any]] = [*prompt.messages, {"role": "user", "content": told.strip()}]
        session = _Session(self._toolbox, self._templates, self._cap, prompt.nonce, correlation, runbook)
        session.calls = calls if calls is not None else []
        for step in range(1, self._max_steps + 1):
            last = step == self._max_steps or ledger.exhausted
            completion = await ledger.call(messages, deadline, tools=None if last else tools)
            if last or not completion.tool_calls:
                return completion
            messages.append(dict(completion.message))
            for call in completion.tool_calls:
                result = await session.answer(call.name, call.arguments)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        raise AssertionError("the last step has no tools, so the loop returns before this")


class _Session:
    """One investigation: remembers the calls made so that an identical one is refused."""

    def __init__(
        self,
        toolbox: Toolbox,
        templates: Environment,
        cap: int,
        nonce: str,
        correlation: Correlation | None,
        runbook: RunbookMatch,
    ) -> None:
        self.calls: list[Call] = []
        self._toolbox = toolbox
        self._evidence = templates.get_template("prompts/_evidence.txt.j2")
        self._cap = cap
        self._nonce = nonce
        self._correlation = correlation
        self._runbook = runbook
        self._seen: set[str] = set()

    async def answer(self, name: str, arguments: str) -> str:
        try:
            args = json.loads(arguments or "{}")
        except json.JSONDecodeError:
            return f"refused: the arguments are not valid JSON ({clip(arguments, 200)})"
        if not isinstance(args, dict):
            return "refused: the arguments must be a JSON object"
        key = f"{name}:{json.dumps(args, sort_keys=True)}"
        if key in self._seen:
            return "refused: identical to an earlier call in this investigation; use that result"
        self._seen.add(key)
        log.info("investigation calls %s %s", name, clip(json.dumps(args), 300))
        try:
            text = await self._call(name, args)
        except Exception as error:  # a tool failing is an answer the model can reason about, not a crash
            text = f"error: {type(error).__name__}: {error}"
        self.calls.append(Call(name, args, text))
        lines = "\n".join(f"| {line}" for line in clip(text, self._cap).split("\n"))
        return f"<<<DATA {self._nonce}\n{lines}\n<<<END {self._nonce}"

    async def _call(self, name: str, args: dict[str, Any]) -> str:
        toolbox = self._toolbox
        correlation = self._correlation
        anchor = (
            min(alert.starts_at for alert in correlation.alerts)
            if correlation is not None and correlation.alerts
            else datetime.now(UTC)
        )
        seconds = 60.0 * int(args.get("minutes") or 60)
        text = str(args.get("query", ""))
        if name == "promql" and toolbox.promql is not None:
            return self._show(
                [await toolbox.promql(RunbookQuery(name, "promql", text, seconds), anchor, _WHERE)]
            )
        if name == "logql" and toolbox.logql is not None:
            return self._show(
                [await toolbox.logql(RunbookQuery(name, "logql", text, seconds), anchor, _WHERE)]
            )
        if name == "command" and toolbox.command is not None and correlation is not None:
            query = RunbookQuery(name, "command", str(args.get("action_id", "")), 3600.0)
            alert = (correlation.new_firing or correlation.alerts)[0]
            return self._show([await toolbox.command(query, alert, self._runbook.path or _WHERE)])
        if name == "runbook" and toolbox.runbook is not None:
            found = await toolbox.runbook(str(args.get("name", "")))
            return found if found is not None else "no runbook by that name"
        if name == "past_incidents" and toolbox.past_incidents is not None and correlation is not None:
            return self._show(await toolbox.past_incidents(correlation, self._runbook))
        return f"refused: there is no tool named {name!r}"

    def _show(self, evidence: Sequence[Evidence]) -> str:
        return "\n".join(
            self._evidence.render(item=evidence_view(f"T{index}", item, _TOOL_DETAIL))
            for index, item in enumerate(evidence, 1)
        )
