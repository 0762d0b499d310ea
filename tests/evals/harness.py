"""Runs one evaluation scenario through aiops's real pipeline with every outside system replaying its recording.

Prometheus and Loki are fake servers on loopback answering with the scenario's recorded series and log lines, SSH
commands answer with their recorded output, past incidents are stored first, and the model is the fake MiniMax
answering with the recorded answer — or, with `model` given, the real endpoint. What is measured:

- evidence recall: the share of the scenario's facts whose pattern is found in the prompt sent to the model;
- prompt tokens (aiops's estimate), against a naive prompt that dumps every raw answer the sources received;
- the diagnosis: the actions kept and dropped, and (for a real model) whether its cause names a keyword.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aiops import service
from aiops.actions.catalog import ActionRefused, load_catalog, render_command
from aiops.config import Settings, load_settings
from aiops.inventory import Inventory, without_port
from aiops.llm.diagnoser import LlmDiagnoser
from aiops.llm.tokens import estimate
from aiops.models import AlertGroup, Diagnosis, LlmUsage, RunbookMatch, Triage
from aiops.payload import WebhookPayload
from aiops.pipeline.correlate import correlate
from aiops.sources.commands import CommandSource
from aiops.ssh import CommandResult
from aiops.store import deliveries, incidents
from aiops.store.engine import MEMORY
from tests.evals.scenarios import Scenario
from tests.fakes.loki import FakeLoki
from tests.fakes.minimax import KEY, FakeMiniMax, Reply
from tests.fakes.prometheus import FakePrometheus

NO_SUCH_KEY = "/nonexistent/evals-key"
NAIVE_BUDGET = 8000  # tokens: the naive prompt is also measured cut to aiops's default prompt budget


@dataclass(frozen=True)
class CaseResult:
    name: str
    recall: float
    missing: tuple[str, ...]
    prompt_tokens: int  # aiops's estimate of the prompt it sent
    naive_tokens: int  # the same estimate for a prompt dumping every raw source answer
    naive_recall: (
        float  # recall of that naive prompt cut to the same budget as aiops's (what dumping would keep)
    )
    reported_tokens: int  # prompt tokens as the endpoint reported them
    usage: LlmUsage | None
    diagnosis: Diagnosis
    seconds: float
    passed: bool  # cause named, nothing forbidden proposed, a diagnosis from the model at all
    notes: tuple[str, ...]

    @property
    def ratio(self) -> float:
        return self.prompt_tokens / self.naive_tokens if self.naive_tokens else 0.0


class RecordedCommands:
    """The `Executor` of the evaluation: each rendered argv answers with its recorded output."""

    def __init__(self, outputs: Mapping[tuple[str, ...], CommandResult]) -> None:
        self._outputs = outputs
        self.ran: list[tuple[str, tuple[str, ...]]] = []

    async def run(
        self,
        host: str,
        argv: Sequence[str],
        *,
        timeout: float,  # noqa: ASYNC109
        output_cap: int,
    ) -> CommandResult:
        self.ran.append((host, tuple(argv)))
        found = self._outputs.get(tuple(argv))
        if found is None:
            return CommandResult(host, tuple(argv), 127, "", "command not recorded", False, 0.0)
        return dataclasses.replace(found, host=host)


async def run_case(
    scenario: Scenario, model: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None
) -> CaseResult:
    """One scenario; `model` is the `llm` config of a real endpoint, or None for the recorded answer. `environ`,
    when given, is the environment a user would set (`MINIMAX_BASE_URL`, `MINIMAX_API_KEY`, `MINIMAX_MODEL`),
    applied over the settings as `aiops serve` applies it; `model` then holds only what the environment does not."""
    prometheus, loki, minimax = FakePrometheus(), FakeLoki(), FakeMiniMax()
    for fake in (prometheus, loki, minimax):
        fake.start()
    try:
        _load_recordings(scenario, prometheus, loki)
        minimax.responder = lambda request: Reply(content=scenario.answer_text)
        real = model is not None or environ is not None
        fake = {"api_key": KEY, "base_url": minimax.base_url, "provider": "minimax"}
        llm = dict(model or {}) if real else fake
        settings = _settings(scenario, prometheus.url, loki.url, llm, environ)
        return await _run(scenario, settings, prometheus, loki)
    finally:
        for fake in (prometheus, loki, minimax):
            fake.stop()


def _settings(
    scenario: Scenario,
    prometheus: str,
    loki: str,
    llm: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> Settings:
    fake_host = {"address": "127.0.0.1", "user": "aiops", "key_file": NO_SUCH_KEY, "known_hosts": NO_SUCH_KEY}
    raw = {
        "database": {"url": MEMORY},
        "prometheus": {"url": prometheus},
        "loki": {"url": loki},
        "runbooks": {"dir": str(scenario.runbooks)},
        "server": {"language": "en"},
        "hosts": dict.fromkeys(_targets(scenario), fake_host),
        "llm": {"call_timeout": 120, "incident_deadline": 300, **llm},
    }
    if environ is None:
        return Settings.model_validate(raw)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "aiops.yml"
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        return load_settings(path, environ)


def _targets(scenario: Scenario) -> set[str]:
    """The host names the catalog's actions would reach for this alert: the inventory they need."""
    path = scenario.runbooks / "actions.yml"
    labels = scenario.alert.labels
    names = {without_port(labels.get("instance", "host"))}
    if path.is_file():
        for action_id in load_catalog(path).ids():
            action = load_catalog(path).get(action_id)
            label = action.target.removeprefix("labels.") if action else ""
            if label in labels:
                names.add(without_port(labels[label]))
    return names


def _load_recordings(scenario: Scenario, prometheus: FakePrometheus, loki: FakeLoki) -> None:
    prometheus.recorded = [
        (
            answer.match,
            [{"metric": dict(s.metric), "values": [[t, v] for t, v in s.values]} for s in answer.series],
        )
        for answer in scenario.prometheus
    ]
    for answer in scenario.loki:
        streams = [
            {"stream": dict(stream.stream), "values": [[str(int(t * 1e9)), line] for t, line in stream.lines]}
            for stream in answer.streams
        ]
        loki.add(answer.match.pattern, streams)


async def _run(
    scenario: Scenario, settings: Settings, prometheus: FakePrometheus, loki: FakeLoki
) -> CaseResult:
    services = await service.start(settings, workers=False)
    try:
        commands = RecordedCommands(_recorded_outputs(scenario))
        stages = services.pipeline.stages
        sources = [s for s in stages.sources if s.name != "ssh"]
        catalog = load_catalog(scenario.runbooks / "actions.yml")
        inventory = Inventory(settings.hosts)
        sources.append(CommandSource(catalog, inventory, commands))
        services.pipeline.stages = dataclasses.replace(stages, sources=sources, notify_within=None)
        await _seed_history(services, scenario)
        started = time.perf_counter()
        triage = await _triage(services, scenario.group, scenario.payload_text)
        seconds = time.perf_counter() - started
        diagnoser = stages.diagnoser
        assert isinstance(diagnoser, LlmDiagnoser) and diagnoser.last_prompt is not None
        prompt = diagnoser.last_prompt.text
        naive = _naive_prompt(
            scenario, prometheus, loki, commands, triage, diagnoser.last_prompt.messages[0]["content"]
        )
        return _result(scenario, triage, prompt, naive, seconds)
    finally:
        await services.close()


async def _triage(services: service.Services, group: AlertGroup, text: str) -> Triage:
    async with services.engine.begin() as conn:
        receipt = await deliveries.record(conn, group, text)
    correlation = await correlate(services.engine, receipt.delivery_id)
    return await services.pipeline.triage(correlation)


async def _seed_history(services: service.Services, scenario: Scenario) -> None:
    """Each past incident as aiops would have stored it: opened by a delivery, diagnosed, resolved."""
    for index, past in enumerate(scenario.history):
        payload = json.loads(scenario.payload_text)
        payload["groupKey"] = f"{payload['groupKey']}-past-{index}"
        for alert in payload["alerts"]:
            alert["fingerprint"] = f"{alert.get('fingerprint', 'f')}-past-{index}"
        group = WebhookPayload.model_validate(payload).to_group()
        async with services.engine.begin() as conn:
            receipt = await deliveries.record(conn, group, json.dumps(payload))
        correlation = await correlate(services.engine, receipt.delivery_id)
        diagnosis = Diagnosis(source="llm", summary=f"{past.summary} Outcome: {past.outcome}")
        async with services.engine.begin() as conn:
            triage = Triage(correlation, RunbookMatch(None, None, "seeded"), (), diagnosis)
            await incidents.save_triage(conn, receipt.delivery_id, triage)
            if past.resolved is not None:
                await conn.exec_driver_sql(
                    "UPDATE incidents SET status = 'resolved', opened_at = ?, resolved_at = ? WHERE id = ?",
                    (past.opened, past.resolved, correlation.incident.id),
                )


def _recorded_outputs(scenario: Scenario) -> dict[tuple[str, ...], CommandResult]:
    path = scenario.runbooks / "actions.yml"
    if not path.is_file():
        return {}
    catalog = load_catalog(path)
    outputs: dict[tuple[str, ...], CommandResult] = {}
    alert = scenario.alert
    for action_id, recorded in scenario.commands.items():
        action = catalog.get(action_id)
        if action is None:
            continue
        try:
            argv = render_command(action, alert.labels, alert.annotations, None).argv
        except ActionRefused:
            continue
        outputs[argv] = CommandResult(
            "", argv, recorded.exit_status, recorded.stdout, recorded.stderr, False, 0.01
        )
    return outputs


def _naive_prompt(
    scenario: Scenario,
    prometheus: FakePrometheus,
    loki: FakeLoki,
    commands: RecordedCommands,
    triage: Triage,
    system: str,
) -> str:
    """What a prompt would hold if every source's raw answer were pasted in: the comparison for prompt size."""
    parts = [system, scenario.payload_text, triage.runbook.body]
    for request in prometheus.requests:
        _, body = prometheus.answer({k: v for k, v in request.items() if k != "path"})
        parts.append(request.get("query", "") + "\n" + json.dumps(body))
    for request in loki.requests:
        answer = scenario.loki_answer(request.params.get("query", ""))
        if answer is not None:
            parts.extend(line for stream in answer.streams for _, line in stream.lines)
    parts.extend(recorded.stdout for recorded in scenario.commands.values())
    parts.extend(f"{past.summary} {past.outcome}" for past in scenario.history)
    return "\n".join(parts)


def _result(scenario: Scenario, triage: Triage, prompt: str, naive: str, seconds: float) -> CaseResult:
    missing = tuple(fact.fact for fact in scenario.missing_facts(prompt))
    recall = 1 - len(missing) / len(scenario.facts) if scenario.facts else 1.0
    cut = naive[: NAIVE_BUDGET * 3]  # the token estimate counts ASCII at 3 characters per token
    naive_missing = scenario.missing_facts(cut)
    naive_recall = 1 - len(naive_missing) / len(scenario.facts) if scenario.facts else 1.0
    diagnosis = triage.diagnosis
    proposed = {action.action_id for action in diagnosis.actions}
    forbidden = proposed & set(scenario.expect.forbidden_actions)
    cause = (diagnosis.probable_cause or "").lower()
    named = any(word.lower() in cause for word in scenario.expect.cause_keywords)
    notes = [f"forbidden action kept: {sorted(forbidden)}"] if forbidden else []
    notes += [f"dropped: {item}" for item in diagnosis.dropped_actions]
    if diagnosis.source != "llm":
        notes.append(f"no model diagnosis: {diagnosis.unavailable}")
    usage = diagnosis.usage
    return CaseResult(
        name=scenario.name,
        recall=recall,
        missing=missing,
        prompt_tokens=estimate(prompt),
        naive_tokens=estimate(naive),
        naive_recall=naive_recall,
        reported_tokens=usage.prompt_tokens if usage else 0,
        usage=usage,
        diagnosis=diagnosis,
        seconds=seconds,
        passed=diagnosis.source == "llm" and named and not forbidden,
        notes=tuple(notes),
    )


def report(results: Sequence[CaseResult]) -> str:
    """A table for the terminal and docs/benchmarks.md."""
    lines = [
        "| scenario | recall | prompt tokens | naive tokens | ratio | naive recall at 8k | passed | seconds | cost USD |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cost = _cost(r.usage.cost) if r.usage else "—"
        lines.append(
            f"| {r.name} | {r.recall:.2f} | {r.prompt_tokens} | {r.naive_tokens} | {r.ratio:.3f} | {r.naive_recall:.2f} | "
            f"{'yes' if r.passed else 'no'} | {r.seconds:.1f} | {cost} |"
        )
    total_prompt = sum(r.prompt_tokens for r in results)
    total_naive = sum(r.naive_tokens for r in results)
    recall = sum(r.recall for r in results) / len(results) if results else 0.0
    naive_recall = sum(r.naive_recall for r in results) / len(results) if results else 0.0
    lines.append(
        f"| **all** | {recall:.2f} | {total_prompt} | {total_naive} | {total_prompt / max(1, total_naive):.3f} | "
        f"{naive_recall:.2f} | "
        f"{sum(r.passed for r in results)}/{len(results)} | {sum(r.seconds for r in results):.1f} | "
        f"{_cost(_total(r.usage.cost for r in results if r.usage))} |"
    )
    return "\n".join(lines)


def _total(costs: Iterable[float | None]) -> float | None:
    """A sum with an unknown part is unknown."""
    known = list(costs)
    return None if None in known else sum(cost for cost in known if cost is not None)


def _cost(cost: float | None) -> str:
    return "unknown" if cost is None else f"{cost:.5f}"


def folder_of(name: str) -> Path:
    return Path(__file__).parent / "scenarios" / name
