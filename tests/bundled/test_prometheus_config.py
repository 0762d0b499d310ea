"""The bundled prometheus.yml and alertmanager.yml: valid for the real tools, loading the bundled rules, pointing
at the docker-compose services, and routing and inhibiting alerts the way their comments say."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.bundled.rules import ROOT, bundled_alerts, rule_files
from tests.support.binaries import free_port, require
from tests.support.stack import ManagedProcess, http

PROMETHEUS_YML = ROOT / "prometheus" / "prometheus.yml"
ALERTMANAGER_YML = ROOT / "prometheus" / "alertmanager.yml"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path}: not a mapping"
    return document


def scrape_jobs() -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in load(PROMETHEUS_YML)["scrape_configs"]}


# ── prometheus.yml ──────────────────────────────────────────────────────────────────────────────────────────────


def test_prometheus_config_loads_with_the_bundled_rules(tmp_path: Path) -> None:
    """promtool resolves rule_files itself (a glob matching nothing passes), so the rules are copied where the
    copied config's rule_files points, as the compose file mounts them."""
    shutil.copytree(ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("tests", "*.md"))
    config = load(PROMETHEUS_YML)
    config["rule_files"] = [str(tmp_path / "rules" / "*.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = run(require("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(rule_files())} rule files found" in output, output


def test_prometheus_points_at_the_compose_services() -> None:
    config = load(PROMETHEUS_YML)
    jobs = scrape_jobs()
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert jobs["aiops"]["static_configs"][0]["targets"] == ["aiops:18789"]
    assert jobs["aiops"].get("metrics_path", "/metrics") == "/metrics"
    assert jobs["node"]["static_configs"][0]["targets"] == ["node-exporter:9100"]
    assert {"target_label": "__address__", "replacement": "blackbox-exporter:9115"} in jobs["blackbox"][
        "relabel_configs"
    ]


def test_every_job_the_rules_select_is_scraped() -> None:
    wanted = {job for alert in bundled_alerts() for job in re.findall(r'\bjob="([^"]+)"', alert.expr)}
    assert wanted <= set(scrape_jobs()), (
        f"rules select jobs prometheus.yml does not scrape: {wanted - set(scrape_jobs())}"
    )


# ── alertmanager.yml ────────────────────────────────────────────────────────────────────────────────────────────


def test_alertmanager_config_passes_amtool() -> None:
    result = run(require("amtool"), "check-config", str(ALERTMANAGER_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


def test_alertmanager_delivers_to_aiops_in_the_compose_stack() -> None:
    """The compose file runs aiops as `aiops` on 18789 and mounts the token as the secret `aiops_webhook_token`."""
    receivers = {receiver["name"]: receiver for receiver in load(ALERTMANAGER_YML)["receivers"]}
    (webhook,) = receivers["aiops"]["webhook_configs"]
    assert webhook["url"] == "http://aiops:18789/webhook/alertmanager"
    assert webhook["http_config"]["authorization"]["credentials_file"] == "/run/secrets/aiops_webhook_token"
    assert webhook["send_resolved"] is True
    assert webhook["max_alerts"] == 0


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"alertname": "HostOutOfDiskSpace", "severity": "critical", "instance": "web-1:9100"}, "aiops"),
        ({"alertname": "TargetDown", "severity": "critical", "instance": "aiops:18789"}, "aiops"),
        ({"alertname": "AiopsDown", "severity": "critical", "job": "aiops"}, "oncall,aiops"),
        (
            {"alertname": "AiopsNotificationsFailing", "severity": "warning", "channel": "feishu"},
            "oncall,aiops",
        ),
    ],
    ids=lambda value: value.get("alertname", "") if isinstance(value, dict) else value,
)
def test_alertmanager_routes(labels: dict[str, str], receivers: str) -> None:
    result = run(
        require("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_YML}",
        f"--verify.receivers={receivers}",
        *(f"{name}={value}" for name, value in labels.items()),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """The bundled alertmanager.yml, unchanged, in a real Alertmanager; nothing here is ever notified (the first
    notification would leave after group_wait, and its host `aiops` does not resolve here)."""
    port = free_port()
    process = ManagedProcess(
        "alertmanager",
        [
            require("prometheus-alertmanager"),
            f"--config.file={ALERTMANAGER_YML}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        tmp_path,
        f"http://127.0.0.1:{port}/-/ready",
    )
    process.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.mark.e2e
def test_a_critical_alert_holds_back_the_warnings_of_its_target_only(alertmanager: str) -> None:
    posted = {
        "down": {"alertname": "TargetDown", "severity": "critical", "job": "node", "instance": "web-1:9100"},
        "load": {"alertname": "HostHighLoad", "severity": "warning", "job": "node", "instance": "web-1:9100"},
        "reboot": {"alertname": "HostRebooted", "severity": "info", "job": "node", "instance": "web-1:9100"},
        "other host": {
            "alertname": "HostHighLoad",
            "severity": "warning",
            "job": "node",
            "instance": "web-2:9100",
        },
        "disk critical": _disk("critical"),
        "disk warning": _disk("warning"),
        "aiops missing": {"alertname": "AiopsDown", "severity": "critical", "job": "aiops"},
        "cost": {"alertname": "AiopsLlmDailyCostHigh", "severity": "warning", "job": "aiops"},
    }
    response = http().post(
        f"{alertmanager}/api/v2/alerts", json=[{"labels": labels} for labels in posted.values()]
    )
    assert response.status_code == 200, response.text
    states = {
        name: state
        for alert in http().get(f"{alertmanager}/api/v2/alerts").json()
        for name, labels in posted.items()
        if alert["labels"] == labels
        for state in [alert["status"]["state"]]
    }
    assert states == {
        "down": "active",
        "load": "suppressed",
        "reboot": "suppressed",
        "other host": "active",
        "disk critical": "active",
        "disk warning": "suppressed",
        "aiops missing": "active",  # without an instance it holds back nothing
        "cost": "active",
    }


def _disk(severity: str) -> dict[str, str]:
    return {
        "alertname": "HostOutOfDiskSpace",
        "severity": severity,
        "job": "node",
        "instance": "db-1:9100",
        "mountpoint": "/var/lib/postgresql",
    }
