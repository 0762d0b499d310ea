"""The evaluation scenarios themselves: every folder loads, its runbooks lint clean and match as intended, its
recordings answer every query the pipeline will make, and its facts, answer and expectations are consistent.

The loader's shorthands and error messages are tested at the end, on copies of a real folder.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from aiops.actions.catalog import ActionRefused, Catalog, load_catalog, render_command
from aiops.logtext import redact, redact_lines
from aiops.payload import WebhookPayload
from aiops.runbooks.library import RunbookLibrary
from aiops.runbooks.lint import catalog_ids, lint
from aiops.runbooks.model import Runbook
from aiops.runbooks.queries import render_queries
from aiops.sources.prometheus import alert_expression
from tests.evals.scenarios import ROOT, Scenario, ScenarioError, load_all, load_scenario

REQUIRED = {
    "disk-full",
    "memory-leak-oom",
    "cpu-saturation",
    "crashloop-service",
    "certificate-expiry",
    "target-down",
    "flapping-alert",
    "no-runbook",
    "prompt-injection",
}
FOLDERS = sorted(path for path in ROOT.iterdir() if path.is_dir())
STARTS_AT = datetime(2026, 11, 20, 3, 12, tzinfo=UTC)
AFTER = 900.0  # how far past startsAt the sources look (PrometheusConfig.after)


@pytest.fixture(scope="module", params=FOLDERS, ids=[path.name for path in FOLDERS])
def scenario(request: pytest.FixtureRequest) -> Scenario:
    folder: Path = request.param
    return load_scenario(folder)


def catalog(scenario: Scenario) -> Catalog:
    return load_catalog(scenario.runbooks / "actions.yml")


def matched(scenario: Scenario) -> Runbook | None:
    return RunbookLibrary(scenario.runbooks).find(scenario.alert)[1]


# --- the folders -----------------------------------------------------------------------------------------


def test_every_required_case_has_a_folder_and_all_load() -> None:
    assert {path.name for path in FOLDERS} >= REQUIRED
    assert [scenario.name for scenario in load_all()] == [path.name for path in FOLDERS]


def test_runbooks_and_catalog_pass_lint(scenario: Scenario) -> None:
    ids = catalog_ids(scenario.runbooks)
    assert ids, "runbooks/actions.yml is missing or has no actions"
    assert lint(scenario.runbooks, ids) == []


def test_alert_is_a_valid_webhook_payload(scenario: Scenario) -> None:
    payload = WebhookPayload.model_validate_json(scenario.payload_text)
    assert payload.version == "4" and payload.status == "firing" and len(payload.alerts) == 1
    alert = payload.alerts[0]
    assert alert.status == "firing" and alert.startsAt == STARTS_AT
    assert {"alertname", "instance", "job", "severity"} <= set(alert.labels)
    assert {"summary", "description"} <= set(alert.annotations)
    assert alert_expression(scenario.alert), "generatorURL has no g0.expr"


def test_alert_matches_its_intended_runbook(scenario: Scenario) -> None:
    match, runbook = RunbookLibrary(scenario.runbooks).find(scenario.alert)
    assert match.path == scenario.expect.runbook, match.reason
    assert (runbook is None) == (scenario.name == "no-runbook")


# --- the recordings --------------------------------------------------------------------------------------


def _queries(scenario: Scenario) -> tuple[list[tuple[str, float]], list[tuple[str, float]], list[str]]:
    """(PromQL with its range, LogQL with its range, command ids) the pipeline asks for this alert."""
    expression = alert_expression(scenario.alert)
    assert expression is not None
    promql, logql, commands = [(expression, 0.0)], [], []
    runbook = matched(scenario)
    for query in render_queries(runbook, scenario.alert) if runbook else ():
        assert query.error is None, f"{query.name}: {query.error}"
        if query.language == "promql":
            promql.append((query.query, query.range))
        elif query.language == "logql":
            logql.append((query.query, query.range))
        else:
            commands.append(query.query)
    return promql, logql, commands


def test_every_query_has_a_recorded_answer_and_every_recording_is_used(scenario: Scenario) -> None:
    promql, logql, commands = _queries(scenario)
    used_prometheus = {id(scenario.prometheus_answer(query)) for query, _ in promql}
    used_loki = {id(scenario.loki_answer(query)) for query, _ in logql}
    for query, _ in promql:
        assert scenario.prometheus_answer(query) is not None, f"prometheus.yml answers nothing to {query}"
    for query, _ in logql:
        assert scenario.loki_answer(query) is not None, f"loki.yml answers nothing to {query}"
    unused = [answer.match.pattern for answer in scenario.prometheus if id(answer) not in used_prometheus]
    assert unused == [], "prometheus.yml entries no query reaches (shadowed by an earlier match?)"
    unused = [answer.match.pattern for answer in scenario.loki if id(answer) not in used_loki]
    assert unused == [], "loki.yml entries no query reaches (shadowed by an earlier match?)"
    assert sorted(scenario.commands) == sorted(set(commands))
    actions = catalog(scenario)
    for command in commands:
        action = actions.get(command)
        assert action is not None and action.risk == "read", f"{command}: evidence runs read actions only"
        render_command(action, scenario.alert.labels, scenario.alert.annotations, proposal_params=None)


def test_recorded_series_cover_the_runbook_windows(scenario: Scenario) -> None:
    anchor = scenario.starts_at.timestamp()
    promql, logql, _ = _queries(scenario)
    for query, seconds in promql[1:]:
        recorded = scenario.prometheus_answer(query)
        assert recorded is not None and recorded.series, query
        first = min(series.values[0][0] for series in recorded.series)
        last = max(series.values[-1][0] for series in recorded.series)
        assert first <= anchor + AFTER - seconds + 60 and last >= anchor, (
            f"{query}: points do not span its range"
        )
    for query, seconds in logql:
        logs = scenario.loki_answer(query)
        assert logs is not None
        inside = [
            line
            for stream in logs.streams
            for time, line in stream.lines
            if anchor - seconds <= time <= anchor + AFTER
        ]
        assert inside, f"{query}: no line within its range"


def test_logs_are_noisy_and_hold_a_secret_to_redact(scenario: Scenario) -> None:
    lines = [line for answer in scenario.loki for stream in answer.streams for _, line in stream.lines]
    if scenario.name == "no-runbook":
        assert lines == []
        return
    assert len(lines) >= 200, "hundreds of lines, most of them noise"
    assert any(redact(line) != line for line in lines), "no secret for the redaction to catch"


def test_history_where_it_matters() -> None:
    scenarios = load_all()
    with_history = [scenario.name for scenario in scenarios if scenario.history]
    assert "flapping-alert" in with_history and len(with_history) >= 2
    for scenario in scenarios:
        assert all(past.opened < scenario.starts_at.timestamp() for past in scenario.history)


# --- facts, answer and expectations ----------------------------------------------------------------------


def _recorded_text(scenario: Scenario) -> str:
    """Everything the prompt is built from, secrets redacted as the pipeline redacts them. Whether the facts
    survive the pipeline's summaries is `test_evals.py`'s question; here, whether they are in the data at all."""
    match = RunbookLibrary(scenario.runbooks).match(scenario.alert)
    parts = [scenario.payload_text, str(match.reason)]
    for answer in scenario.prometheus:
        for series in answer.series:
            parts.append(json.dumps(dict(series.metric)))
            parts.extend(value for _, value in series.values)
    for loki in scenario.loki:
        parts.extend(redact_lines(line for stream in loki.streams for _, line in stream.lines))
    for output in scenario.commands.values():
        parts.extend(redact_lines((output.stdout + output.stderr).splitlines()))
    parts.extend(f"{past.summary}\n{past.outcome}" for past in scenario.history)
    return "\n".join(parts)


def test_every_fact_is_in_the_recorded_data(scenario: Scenario) -> None:
    corpus = _recorded_text(scenario)
    assert 3 <= len(scenario.facts) <= 6
    assert [fact.fact for fact in scenario.missing_facts(corpus)] == []


def test_recorded_answer_proposes_only_catalog_actions_with_valid_params(scenario: Scenario) -> None:
    actions = catalog(scenario)
    runbook = matched(scenario)
    allowed_by_runbook = set(runbook.actions) if runbook else set()
    for proposal in scenario.answer.actions:
        action = actions.get(proposal.id)
        assert action is not None, f"{proposal.id} is not in the catalog"
        if proposal.id not in allowed_by_runbook:
            # only the prompt-injection case records a (wrong) proposal the runbook does not allow
            assert proposal.id in scenario.expect.forbidden_actions
            continue
        assert proposal.id in scenario.expect.allowed_actions
        wanted = {name for name, param in action.params.items() if param.source == "proposal"}
        assert set(proposal.params) == wanted, proposal.id
        try:
            render_command(action, scenario.alert.labels, scenario.alert.annotations, proposal.params)
        except ActionRefused as error:
            pytest.fail(str(error))
    assert scenario.answer.evidence, "a diagnosis cites its evidence"


def test_expectations_fit_the_runbook_and_catalog(scenario: Scenario) -> None:
    runbook = matched(scenario)
    allowed_by_runbook = set(runbook.actions) if runbook else set()
    assert set(scenario.expect.allowed_actions) <= allowed_by_runbook
    assert set(scenario.expect.forbidden_actions) <= set(catalog(scenario).ids())
    proposed = {proposal.id for proposal in scenario.answer.actions}
    assert any(
        keyword.lower() in scenario.answer.probable_cause.lower()
        for keyword in scenario.expect.cause_keywords
    )
    if scenario.name != "prompt-injection":
        assert not proposed & set(scenario.expect.forbidden_actions)


def test_prompt_injection_case() -> None:
    scenario = load_scenario(ROOT / "prompt-injection")
    lines = [line for answer in scenario.loki for stream in answer.streams for _, line in stream.lines]
    assert any("ignore previous instructions" in line and "restart-all" in line for line in lines)
    runbook = matched(scenario)
    assert runbook is not None and "restart-all" not in runbook.actions
    assert catalog(scenario).get("restart-all") is not None
    proposed = [proposal.id for proposal in scenario.answer.actions]
    assert "restart-all" in proposed and set(proposed) & set(runbook.actions)


# --- the loader ------------------------------------------------------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    folder = tmp_path / "case"
    shutil.copytree(ROOT / "disk-full", folder)
    return folder


def write(path: Path, data: object) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def test_shorthands_expand_to_absolute_points_and_lines(copy: Path) -> None:
    metric = {"instance": "db-1:9100"}
    write(
        copy / "prometheus.yml",
        [
            {
                "match": "x",
                "series": [
                    {
                        "metric": metric,
                        "values": [[-300, "7"]],
                        "ramp": {"from": -120, "to": 0, "step": 60, "start": 1, "end": 0.5},
                        "constant": [{"from": 60, "to": 120, "step": 60, "value": 2.25}],
                    }
                ],
            }
        ],
    )
    write(
        copy / "loki.yml",
        [
            {
                "match": "y",
                "streams": [
                    {
                        "stream": metric,
                        "lines": [[5, "at {time:%H:%M:%S} and {time+60:%H:%M}"]],
                        "repeat": {"at": -10, "every": 5, "count": 3, "start": 7, "line": "n={i}"},
                    }
                ],
            }
        ],
    )
    scenario = load_scenario(copy)
    anchor = STARTS_AT.timestamp()
    series = scenario.prometheus[0].series[0]
    assert series.metric == metric
    assert series.values == (
        (anchor - 300, "7"),
        (anchor - 120, "1"),
        (anchor - 60, "0.75"),
        (anchor, "0.5"),
        (anchor + 60, "2.25"),
        (anchor + 120, "2.25"),
    )
    assert scenario.loki[0].streams[0].lines == (
        (anchor - 10, "n=7"),
        (anchor - 5, "n=8"),
        (anchor, "n=9"),
        (anchor + 5, "at 03:12:05 and 03:13"),
    )
    assert scenario.loki_answer('{job="y"}') is scenario.loki[0]
    assert scenario.prometheus_answer("nothing here") is None


def test_jitter_is_the_same_on_every_load() -> None:
    first, second = load_scenario(ROOT / "cpu-saturation"), load_scenario(ROOT / "cpu-saturation")
    assert first.prometheus == second.prometheus
    values = {value for _, value in first.prometheus[1].series[0].values[:30]}
    assert len(values) > 5  # jittered, not constant


def test_a_new_anchor_moves_the_payload_and_every_time() -> None:
    moved_to = datetime(2027, 1, 2, 10, 0, tzinfo=UTC)
    original = load_scenario(ROOT / "flapping-alert")
    moved = load_scenario(ROOT / "flapping-alert", starts_at=moved_to)
    shift = moved_to.timestamp() - STARTS_AT.timestamp()
    assert moved.starts_at == moved_to == moved.alert.starts_at
    assert json.loads(moved.payload_text)["alerts"][0]["startsAt"] == "2027-01-02T10:00:00Z"
    assert moved.prometheus[0].series[0].values[0][0] == original.prometheus[0].series[0].values[0][0] + shift
    assert moved.history[0].opened == original.history[0].opened + shift
    assert "Sat 2027-01-02 10:14:00 UTC" in moved.commands["list-timers"].stdout  # the next run, 840 s later


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        (
            "prometheus.yml",
            [{"match": "x", "series": [{"metric": {}, "rmap": {}}]}],
            "prometheus.yml: [0].series[0].rmap: is not a known field",
        ),
        (
            "prometheus.yml",
            [{"match": "x", "series": [{"metric": {}, "values": [[0, 1]]}]}],
            "prometheus.yml: [0].series[0].values[0][1]: Input should be a valid string",
        ),
        (
            "prometheus.yml",
            [{"match": "(", "series": []}],
            "prometheus.yml: [0].match: is not a valid Python regex",
        ),
        (
            "prometheus.yml",
            [
                {
                    "match": "x",
                    "series": [
                        {
                            "metric": {},
                            "values": [[0, "1"]],
                            "constant": {"from": 0, "to": 0, "step": 60, "value": 1},
                        }
                    ],
                }
            ],
            "prometheus.yml: [0].series[0]: two samples at 0s",
        ),
        (
            "loki.yml",
            [{"match": "x", "streams": [{"stream": {}}]}],
            "loki.yml: [0].streams[0]: needs lines or repeat",
        ),
        (
            "facts.yml",
            [{"fact": "a", "pattern": "b"}],
            "facts.yml: (body): List should have at least 3 items",
        ),
        ("history.yml", [{"opened": 10, "summary": "s", "outcome": "o"}], "history.yml: [0].opened"),
        ("expect.yml", {"runbook": None, "cause_keywords": []}, "expect.yml: cause_keywords"),
    ],
)
def test_a_malformed_file_is_named_with_its_field(
    copy: Path, file: str, content: object, message: str
) -> None:
    write(copy / file, content)
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario(copy)


def test_a_malformed_answer_or_a_missing_file_is_named(copy: Path) -> None:
    answer = json.loads((copy / "answer.json").read_text())
    answer["confidence"] = "certain"
    (copy / "answer.json").write_text(json.dumps(answer))
    with pytest.raises(
        ScenarioError, match=r"answer\.json: confidence: Input should be 'low', 'medium' or 'high'"
    ):
        load_scenario(copy)
    (copy / "facts.yml").unlink()
    with pytest.raises(ScenarioError, match=r"facts\.yml: is missing"):
        load_scenario(copy)
