"""The real stack for end-to-end tests: an exporter, `aiops serve`, Alertmanager and Prometheus, started in order.

`start_stack` (the fixture in tests/e2e/conftest.py) returns a function taking the token Alertmanager sends and
extra configuration sections for aiops.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiops.config import ENV_OVERRIDES
from tests.support import stack as s
from tests.support.binaries import free_port, require
from tests.support.service import AiopsProcess

GAUGE = "aiops_e2e_toggle"
ALERT = "AiopsE2EToggle"
EXPRESSION = f"{GAUGE} > 0"
DEADLINE = 60.0
TOKEN = "e2e-" + secrets.token_hex(16)  # what aiops expects; at least 16 characters


@dataclass
class Stack:
    workdir: Path
    exporter: s.Exporter
    aiops: AiopsProcess
    alertmanager: s.ManagedProcess
    prometheus: s.ManagedProcess

    def api(self, path: str) -> Any:
        response = s.http().get(self.aiops.url + path)
        assert response.status_code == 200, f"GET {path}: HTTP {response.status_code} {response.text}"
        return response.json()

    def incidents(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api("/api/v1/incidents")["incidents"]
        return items

    def incident(self, incident_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self.api(f"/api/v1/incidents/{incident_id}")
        return found

    def aiops_metric(self, name: str, **labels: str) -> float:
        return s.metric(s.http().get(f"{self.aiops.url}/metrics").text, name, **labels)

    def alertmanager_metric(self, name: str, **labels: str) -> float:
        url = self.alertmanager.ready_url.replace("/-/ready", "/metrics")
        return s.metric(s.http().get(url).text, name, **labels)

    def logs(self) -> str:
        """Everything a reader needs to see why a step failed."""

        def safe(read: Callable[[], str]) -> str:
            try:
                text = read()
            except OSError as error:
                return f"(unreadable: {error})"
            return text if len(text) <= s.LOG_TAIL else "…" + text[-s.LOG_TAIL :]

        return s.report(
            [
                (
                    f"exporter {self.exporter.target}",
                    f"value {self.exporter.value:g}, {self.exporter.scrapes} scrapes",
                ),
                ("aiops stderr", safe(self.aiops.stderr)),
                ("aiops stdout", safe(self.aiops.stdout)),
                ("alertmanager.yml", safe((self.workdir / "alertmanager" / "alertmanager.yml").read_text)),
                ("alertmanager log", self.alertmanager.log()),
                ("prometheus log", self.prometheus.log()),
            ]
        )


def stack_starter(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Starts exporter, aiops, Alertmanager and Prometheus (in that order); stops them all afterwards. `environ`
    is the environment aiops gets beyond the test's own (the configuration's overrides are blanked otherwise)."""
    for binary in ("prometheus", "prometheus-alertmanager"):
        require(binary)  # fails in CI, skips loudly elsewhere, before anything is started

    with ExitStack() as cleanup:

        def start(
            alertmanager_token: str,
            environ: dict[str, str] | None = None,
            *,
            scrape: str | None = None,
            rules: list[dict[str, Any]] | None = None,
            link_alertmanager: bool = False,
            **sections: dict[str, Any],
        ) -> Stack:
            """`scrape` and `rules`: what Prometheus scrapes and evaluates instead of the toggle exporter;
            `link_alertmanager`: aiops's `alertmanager.url` is the stack's Alertmanager (for silences)."""
            exporter = s.Exporter(GAUGE, 1).start()
            cleanup.callback(exporter.stop)
            (tmp_path / "aiops").mkdir()
            prometheus_port = free_port()
            alertmanager_port = _port_other_than(prometheus_port)
            linked = (
                {"alertmanager": {"url": f"http://127.0.0.1:{alertmanager_port}"}}
                if link_alertmanager
                else {}
            )
            config = {
                "webhook": {"token": TOKEN},
                "database": {"url": f"sqlite:///{tmp_path / 'aiops' / 'aiops.db'}"},
                "prometheus": {"url": f"http://127.0.0.1:{prometheus_port}", "before": "5m", "after": "1m"},
                "queue": {"poll_interval": "200ms"},
                **linked,
                **sections,
            }
            # The environment overrides would win over the file; the test's configuration is the file.
            env = {**dict.fromkeys(ENV_OVERRIDES, ""), **(environ or {})}
            aiops = AiopsProcess(tmp_path / "aiops", config, env=env)
            while aiops.port in (prometheus_port, alertmanager_port):  # AiopsProcess picks its own port
                aiops = AiopsProcess(tmp_path / "aiops", config, env=env)
            cleanup.callback(aiops.stop)
            aiops.start()

            alertmanager = s.alertmanager(
                tmp_path / "alertmanager",
                port=alertmanager_port,
                route={
                    "receiver": "aiops",
                    "group_by": ["alertname"],
                    "group_wait": "1s",
                    "group_interval": "2s",
                    "repeat_interval": "1h",
                },
                receivers=[
                    {
                        "name": "aiops",
                        "webhook_configs": [
                            {
                                "url": f"{aiops.url}/webhook/alertmanager",
                                "send_resolved": True,
                                "http_config": {
                                    "authorization": {"type": "Bearer", "credentials": alertmanager_token}
                                },
                            }
                        ],
                    }
                ],
            )
            cleanup.callback(alertmanager.stop)
            alertmanager.start()

            prometheus = s.prometheus(
                tmp_path / "prometheus",
                port=prometheus_port,
                scrape=scrape or exporter.target,
                alertmanager=f"127.0.0.1:{alertmanager_port}",
                rules=rules
                or [
                    {
                        "alert": ALERT,
                        "expr": EXPRESSION,
                        "for": "0s",
                        "labels": {"severity": "warning"},
                        "annotations": {"summary": "the e2e toggle is on"},
                    }
                ],
            )
            cleanup.callback(prometheus.stop)
            prometheus.start()
            return Stack(tmp_path, exporter, aiops, alertmanager, prometheus)

        yield start


def _port_other_than(*taken: int) -> int:
    for _ in range(20):
        port = free_port()
        if port not in taken:
            return port
    raise RuntimeError(f"no free port other than {taken}")


# The remediation flows: one high-risk action, run on the real sshd standing in for the alert's host.
ACTION = "mark-fixed"
HOST = "127.0.0.1"  # the alert's instance is the exporter's 127.0.0.1:PORT; the inventory drops the port
QUIET = 1.5  # seconds for a refused click to show that it queued nothing: several queue polls (200ms)


def marker_runbooks(folder: Path, marker: Path) -> Path:
    """A runbook for the e2e alert that allows one high-risk action, writing `marker` on the alert's instance."""
    folder.mkdir()
    (folder / f"{ALERT}.md").write_text(f"---\nalerts: [{ALERT}]\nactions: [{ACTION}]\n---\n# What to do\n")
    (folder / "actions.yml").write_text(
        f"{ACTION}:\n  description: Leave a marker where the alert fired\n"
        f"  argv: [sh, -c, 'echo fixed > {marker}']\n"
        "  target: labels.instance\n  risk: high\n  timeout: 20s\n"
    )
    return folder


def ran_once(
    stack: Stack, incident_id: int, marker: Path, approver: str, via: str, logs: Callable[[], str]
) -> dict[str, Any]:
    """After an approver's click: the marker runbook's action ran once on the sshd, approved by `approver`
    through `via`, refused once before (the stranger's click), and nothing else happened; the proposal as stored."""
    s.eventually(marker.exists, timeout=DEADLINE, what=f"{marker} written over SSH", logs=logs)
    assert marker.read_text() == "fixed\n"

    def finished() -> dict[str, Any] | None:
        [item] = stack.incident(incident_id)["proposals"]
        return item if item["state"] not in ("approved", "running") else None

    done: dict[str, Any] = s.eventually(finished, timeout=DEADLINE, what="the execution finished", logs=logs)
    assert done["state"] == "succeeded" and done["decided_by"] == approver, f"{done}\n{logs()}"
    assert done["decided_via"] == via, done
    assert done["execution"]["state"] == "succeeded" and done["execution"]["exit_status"] == 0, done
    kinds = [entry["kind"] for entry in stack.incident(incident_id)["audit"]]
    assert kinds == ["proposed", "approval_refused", "approved", "execution_started", "executed"], kinds
    return done
