"""The bundled runbooks: lint-clean, one for each bundled alerting rule, matched to its alert with and without the
rule's `runbook_url`, evidence that renders with the alert's labels, and a catalog whose label-sourced parameters
refuse shell and option injection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from aiops.actions.builtin import BUILTINS
from aiops.actions.catalog import Action, ActionRefused, Catalog, load_catalog, render_command
from aiops.models import Alert
from aiops.payload import WebhookPayload
from aiops.runbooks.library import RunbookLibrary
from aiops.runbooks.model import Runbook
from aiops.runbooks.queries import render_queries
from tests.bundled.rules import BundledAlert, bundled_alerts

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "runbooks"
RULES = bundled_alerts()

# The labels an alert gets from the series its rule selects (the rule itself adds `severity`), so that each runbook
# is rendered with what its alert really carries. A new rule needs its line here.
_NODE = {"instance": "web-1:9100", "job": "node"}
_FILESYSTEM = {**_NODE, "mountpoint": "/var/lib/docker", "device": "/dev/nvme0n1p1", "fstype": "ext4"}
_BLACKBOX = {"instance": "https://shop.example.com/healthz", "job": "blackbox"}
_AIOPS = {"instance": "aiops-1:18789", "job": "aiops"}
SERIES_LABELS: dict[str, dict[str, str]] = {
    "HostOutOfDiskSpace": _FILESYSTEM,
    "HostDiskWillFillIn24Hours": _FILESYSTEM,
    "HostOutOfInodes": _FILESYSTEM,
    "HostMemoryUnderPressure": _NODE,
    "HostOomKillDetected": _NODE,
    "HostCpuSaturated": _NODE,
    "HostHighLoad": _NODE,
    "HostFilesystemReadOnly": _FILESYSTEM,
    "HostSystemdUnitFailed": {**_NODE, "name": "nginx.service"},
    "HostClockSkew": _NODE,
    "HostClockNotSynchronising": _NODE,
    "HostNetworkErrors": {**_NODE, "device": "eth0", "direction": "receive"},
    "HostRebooted": _NODE,
    "TargetDown": {"instance": "db-1:9187", "job": "postgres"},
    "CertificateExpiringSoon": _BLACKBOX,
    "BlackboxProbeFailed": _BLACKBOX,
    "AiopsDown": {"job": "aiops"},  # its absent() half has no instance
    "AiopsWebhookErrors": _AIOPS,
    "AiopsQueueBacklog": _AIOPS,
    "AiopsLlmFailing": _AIOPS,
    "AiopsLlmDailyCostHigh": {"job": "aiops"},  # summed over the replicas
    "AiopsNotificationsFailing": {**_AIOPS, "channel": "feishu", "outcome": "failed"},
    "AiopsActionsFailing": {**_AIOPS, "outcome": "failed"},
    "AiopsRemediationBreakerTripped": _AIOPS,
    "AiopsApprovalsWaiting": _AIOPS,
}
# Values an attacker who can send an alert might put into a label a command parameter reads.
INJECTIONS = ["; rm -rf /", "$(reboot)", "--help"]
# A realistic value of each label a catalog parameter reads: the pattern must accept it, or it refuses everything.
REALISTIC = {
    "instance": "web-1:9100",
    "mountpoint": "/var/lib/docker",
    "name": "nginx.service",
    "device": "eth0",
}
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "fish", "busybox"}


def rule_id(rule: BundledAlert) -> str:
    return f"{rule.name}-{rule.labels.get('severity', 'none')}"


@pytest.fixture(scope="module")
def library() -> RunbookLibrary:
    return RunbookLibrary(RUNBOOKS)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(RUNBOOKS / "actions.yml")


def alert_for(name: str, labels: Mapping[str, str], annotations: Mapping[str, str]) -> Alert:
    """The alert as aiops reads it from an Alertmanager webhook delivery."""
    body = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": "firing",
        "receiver": "aiops",
        "alerts": [
            {
                "status": "firing",
                "labels": {**labels, "alertname": name},
                "annotations": dict(annotations),
                "startsAt": "2026-11-24T03:02:11Z",
                "fingerprint": "0123456789abcdef",
            }
        ],
    }
    return WebhookPayload.model_validate_json(json.dumps(body)).to_group().alerts[0]


def firing(rule: BundledAlert) -> Alert:
    """The alert `rule` fires, with its series' labels and its own labels and annotations."""
    assert rule.name in SERIES_LABELS, f"add the labels of {rule.name}'s series to SERIES_LABELS"
    return alert_for(rule.name, {**SERIES_LABELS[rule.name], **rule.labels}, rule.annotations)


def runbook_of(library: RunbookLibrary, name: str) -> Runbook:
    found = [book for book in library.runbooks() if book.path.as_posix() == f"{name}.md"]
    assert found, f"runbooks/{name}.md is missing or does not parse (see aiops runbooks lint)"
    return found[0]


def label_params(catalog: Catalog) -> list[tuple[str, str, str]]:
    """(action id, parameter name, label name) of every parameter taken from an alert label."""
    return [
        (action_id, param.name, param.source.removeprefix("labels."))
        for action_id in catalog.ids()
        for param in _action(catalog, action_id).params.values()
        if param.source.startswith("labels.")
    ]


def _action(catalog: Catalog, action_id: str) -> Action:
    action = catalog.get(action_id)
    assert action is not None, f"{action_id} is not in actions.yml"
    return action


def test_lint_is_clean() -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AIOPS_")}
    done = subprocess.run(
        [sys.executable, "-m", "aiops", "runbooks", "lint"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "runbooks: all runbooks are fine\n", "")


def test_every_rule_has_a_runbook_and_every_runbook_a_rule() -> None:
    alerts = {rule.name for rule in RULES}
    runbooks = {path.stem for path in RUNBOOKS.glob("*.md") if path.name.lower() != "readme.md"}
    assert alerts, "tests/bundled/rules.py found no alerting rules in rules/*.yml"
    assert sorted(alerts - runbooks) == [], "rules without a runbook"
    assert sorted(runbooks - alerts) == [], "runbooks without a rule"


@pytest.mark.parametrize("rule", RULES, ids=rule_id)
def test_alert_matches_its_runbook_by_runbook_url(rule: BundledAlert, library: RunbookLibrary) -> None:
    alert = firing(rule)
    assert alert.annotations.get("runbook_url") == f"runbooks/{alert.name}.md"
    match = library.match(alert)
    assert (match.path, str(match.reason)) == (f"{alert.name}.md", "runbook_url annotation")


@pytest.mark.parametrize("rule", RULES, ids=rule_id)
def test_alert_matches_its_runbook_by_front_matter(rule: BundledAlert, library: RunbookLibrary) -> None:
    alert = firing(rule)
    without_url = alert_for(
        alert.name, alert.labels, {k: v for k, v in alert.annotations.items() if k != "runbook_url"}
    )
    match = library.match(without_url)
    assert (match.path, str(match.reason)) == (f"{alert.name}.md", "front matter alerts")
    assert runbook_of(library, alert.name).alerts == (alert.name,)


@pytest.mark.parametrize("rule", RULES, ids=rule_id)
def test_evidence_renders_with_the_alerts_labels(
    rule: BundledAlert, library: RunbookLibrary, catalog: Catalog
) -> None:
    alert = firing(rule)
    runbook = runbook_of(library, alert.name)
    assert runbook.metrics, f"{runbook.path} gathers no metrics"
    refused = {query.name: query.error for query in render_queries(runbook, alert) if query.error}
    assert refused == {}
    for log in runbook.logs:
        assert log.command is not None, f"{runbook.path}: bundled runbooks do not assume Loki"
        action = _action(catalog, log.command)
        assert action.risk == "read", f"{runbook.path}: evidence command {action.id} is not read-only"
        render_command(action, alert.labels, alert.annotations)  # raises ActionRefused naming the value


def test_runbook_actions_are_in_the_catalog_or_built_in(library: RunbookLibrary, catalog: Catalog) -> None:
    known = set(catalog.ids()) | set(BUILTINS)
    unknown = {
        book.path.as_posix(): sorted(set(book.actions) - known)
        for book in library.runbooks()
        if set(book.actions) - known
    }
    assert unknown == {}


def test_no_action_runs_a_shell(catalog: Catalog) -> None:
    argvs = {action_id: _action(catalog, action_id).argv for action_id in catalog.ids()}
    shelled = {
        action_id: argv for action_id, argv in argvs.items() if SHELLS & {Path(item).name for item in argv}
    }
    assert shelled == {}


@pytest.mark.parametrize("value", INJECTIONS)
def test_label_parameters_refuse_injection(value: str, catalog: Catalog) -> None:
    # Every action, read ones included: those run without an approval, as evidence.
    params = label_params(catalog)
    assert {action_id for action_id, _, _ in params if _action(catalog, action_id).risk != "read"}
    for action_id, name, label in params:
        action = _action(catalog, action_id)
        assert label in REALISTIC, f"add a realistic value of label {label!r} to REALISTIC"
        assert not action.params[name].options, f"{action_id}: {name} accepts options"
        render_command(action, REALISTIC, {})  # the realistic value passes
        with pytest.raises(ActionRefused, match=f"parameter '{name}'"):
            render_command(action, {**REALISTIC, label: value}, {})


@pytest.mark.parametrize(
    "unit", ["systemd-journald.service", "dbus.service", "user@1000.service", "local-fs.target"]
)
def test_restart_service_refuses_systems_own_units(unit: str, catalog: Catalog) -> None:
    with pytest.raises(ActionRefused):
        render_command(_action(catalog, "restart-service"), {**REALISTIC, "name": unit}, {})
