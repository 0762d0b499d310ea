"""The bundled alerting rules load in Prometheus, pass their promtool unit tests, and keep the contract aiops and
the runbooks rely on: fixed alert names, a severity, readable annotations and `runbook_url: runbooks/<alert>.md`."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.bundled.rules import ROOT, RULE_TESTS, BundledAlert, bundled_alerts, rule_files, rule_test_files
from tests.support.binaries import require

# One runbook per name is written against these (runbooks/<name>.md): renaming an alert orphans its runbook.
ALERT_NAMES = {
    "HostOutOfDiskSpace",
    "HostDiskWillFillIn24Hours",
    "HostOutOfInodes",
    "HostMemoryUnderPressure",
    "HostOomKillDetected",
    "HostCpuSaturated",
    "HostHighLoad",
    "HostFilesystemReadOnly",
    "HostSystemdUnitFailed",
    "HostClockSkew",
    "HostClockNotSynchronising",
    "HostNetworkErrors",
    "HostRebooted",
    "TargetDown",
    "CertificateExpiringSoon",
    "BlackboxProbeFailed",
    "AiopsDown",
    "AiopsWebhookErrors",
    "AiopsQueueBacklog",
    "AiopsLlmFailing",
    "AiopsLlmDailyCostHigh",
    "AiopsNotificationsFailing",
    "AiopsActionsFailing",
    "AiopsRemediationBreakerTripped",
    "AiopsApprovalsWaiting",
}
SEVERITIES = {"critical", "warning", "info"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("promtool"), *args], cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_rule_files_load_in_prometheus() -> None:
    result = promtool("check", "rules", *(str(path) for path in rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", *(str(path) for path in rule_test_files()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_names_are_the_ones_the_runbooks_are_written_for() -> None:
    assert {alert.name for alert in bundled_alerts()} == ALERT_NAMES


@pytest.mark.parametrize(
    "alert", bundled_alerts(), ids=lambda alert: f"{alert.name}-{alert.labels.get('severity')}"
)
def test_every_alert_has_a_severity_and_readable_annotations(alert: BundledAlert) -> None:
    where = f"{alert.file.name}: {alert.name}"
    assert alert.labels.get("severity") in SEVERITIES, f"{where}: labels.severity must be one of {SEVERITIES}"
    for key in ("summary", "description"):
        assert alert.annotations.get(key, "").strip(), f"{where}: annotations.{key} is empty"
    assert alert.annotations.get("runbook_url") == f"runbooks/{alert.name}.md", (
        f"{where}: annotations.runbook_url must be runbooks/{alert.name}.md"
    )


def test_no_two_rules_share_a_name_and_a_severity() -> None:
    seen: dict[tuple[str, str], Path] = {}
    for alert in bundled_alerts():
        key = (alert.name, alert.labels["severity"])
        assert key not in seen, f"{alert.name} has two {key[1]} rules ({seen[key].name}, {alert.file.name})"
        seen[key] = alert.file


def test_every_rule_file_has_unit_tests() -> None:
    tested = {
        (path.parent / name).resolve() for path in rule_test_files() for name in _load(path)["rule_files"]
    }
    missing = [path.name for path in rule_files() if path.resolve() not in tested]
    assert not missing, f"no file in {RULE_TESTS.relative_to(ROOT)} lists {missing} in its rule_files"


def test_every_alert_is_tested_firing_at_each_severity_and_staying_quiet() -> None:
    fired: dict[str, set[str]] = defaultdict(set)
    quiet: set[str] = set()
    for path in rule_test_files():
        for case in _load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                if not expected:
                    quiet.add(check["alertname"])
                for alert in expected:
                    fired[check["alertname"]].add(alert["exp_labels"]["severity"])
    severities: dict[str, set[str]] = defaultdict(set)
    for alert in bundled_alerts():
        severities[alert.name].add(alert.labels["severity"])
    untested = {
        name: sorted(wanted - fired[name]) for name, wanted in severities.items() if wanted - fired[name]
    }
    assert not untested, f"no promtool test expects these alerts to fire (at these severities): {untested}"
    never_quiet = sorted(set(severities) - quiet)
    assert not never_quiet, (
        f"no promtool test expects these alerts to stay quiet (exp_alerts: []): {never_quiet}"
    )


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path}: not a promtool test file"
    return document
