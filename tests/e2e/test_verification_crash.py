"""`aiops serve` killed with SIGKILL while it watches whether an automatic fix worked: after a restart the watch
resumes from the store, Alertmanager's resolution decides it, and the outcome is decided and announced once."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.service import AiopsProcess
from tests.support.sshd import SshServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
DATA = Path(__file__).resolve().parents[1] / "data"
HEADERS = {"Content-Type": "application/json"}


def eventually(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_a_verification_interrupted_by_a_crash_resumes_and_is_decided_once(
    tmp_path: Path, sshd: SshServer
) -> None:
    runs = tmp_path / "runs"
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "HostOutOfDiskSpace.md").write_text(
        "---\nalerts: [HostOutOfDiskSpace]\nactions: [clean-up]\n---\n"
    )
    (folder / "actions.yml").write_text(
        "clean-up:\n  description: A clean-up\n"
        f"  argv: [sh, -c, 'echo run >> {runs}']\n"
        "  target: labels.instance\n  risk: low\n  timeout: 20s\n  verify: {window: 60s}\n"
    )
    host = {**sshd.host().model_dump(mode="json"), "connect_timeout": "5s"}
    config = {
        "database": {"url": f"sqlite:///{tmp_path}/aiops.db"},
        "runbooks": {"dir": str(folder)},
        "hosts": {"web-1": host},
        "remediation": {"mode": "auto", "verify_every": "1s"},
        "queue": {"lease": "2s", "poll_interval": "200ms"},
        "server": {"language": "en"},
    }
    aiops = AiopsProcess(tmp_path, config)

    def proposal() -> dict[str, Any] | None:
        answer = httpx.get(f"{aiops.url}/api/v1/incidents/1")
        found = answer.json().get("proposals") if answer.status_code == 200 else None
        return found[0] if found else None

    try:
        aiops.start()
        body = (DATA / "firing.json").read_bytes()
        httpx.post(f"{aiops.url}/webhook/alertmanager", content=body, headers=HEADERS).raise_for_status()
        watching = eventually(
            lambda: (p := proposal()) and p["verification"] and p["verification"]["outcome"] is None and p,
            "the fix ran and is being watched",
        )
        aiops.kill()
        aiops.start()
        body = (DATA / "resolved.json").read_bytes()
        httpx.post(f"{aiops.url}/webhook/alertmanager", content=body, headers=HEADERS).raise_for_status()
        decided = eventually(
            lambda: (p := proposal()) and p["verification"]["outcome"] and p, "the outcome decided"
        )
        time.sleep(3)  # several watch rounds: a second decision or announcement would have been made by now
        final = httpx.get(f"{aiops.url}/api/v1/incidents/1").json()
        output = aiops.stdout()
    finally:
        aiops.stop()
    assert watching["state"] == "succeeded" and watching["decided_via"] == "auto"
    verification = decided["verification"]
    assert verification["outcome"] == "recovered", verification
    assert verification["id"] == watching["verification"]["id"], "the same watch, resumed"
    assert re.fullmatch(
        r"recovered [0-9.]+ s after clean-up, run automatically", verification["detail"]["text"]
    ), verification
    assert runs.read_text() == "run\n", "the fix ran once"
    kinds = [entry["kind"] for entry in final["audit"]]
    assert kinds == ["proposed", "approved", "execution_started", "executed", "verified_recovered"], kinds
    assert output.count("Verification: recovered") == 1, output
    assert aiops.starts == 2
