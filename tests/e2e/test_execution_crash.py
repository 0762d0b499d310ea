"""`aiops serve` killed with SIGKILL while an approved action runs on a real sshd: after a restart the execution's
outcome is "unknown", it is reported, and the action is never run again by itself."""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiops.cli import main
from tests.support.service import AiopsProcess
from tests.support.sshd import SshServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
DATA = Path(__file__).resolve().parents[1] / "data"


def eventually(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_an_execution_interrupted_by_a_crash_is_unknown_and_never_rerun(
    tmp_path: Path, sshd: SshServer
) -> None:
    runs, marker = tmp_path / "runs", tmp_path / "finished"
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "HostOutOfDiskSpace.md").write_text(
        "---\nalerts: [HostOutOfDiskSpace]\nactions: [clean-up]\n---\n"
    )
    (folder / "actions.yml").write_text(
        "clean-up:\n  description: A slow clean-up\n"
        f"  argv: [sh, -c, 'echo run >> {runs}; sleep 4; touch {marker}']\n"
        "  target: labels.instance\n  risk: high\n  timeout: 60s\n"
    )
    host = {**sshd.host().model_dump(mode="json"), "connect_timeout": "5s"}
    config = {
        "database": {"url": f"sqlite:///{tmp_path}/aiops.db"},
        "runbooks": {"dir": str(folder)},
        "hosts": {"web-1": host},
        "remediation": {"approvers": {"cli": [getpass.getuser()]}},
        "queue": {"lease": "2s", "poll_interval": "200ms"},
        "server": {"language": "en"},
    }
    aiops = AiopsProcess(tmp_path, config)
    try:
        aiops.start()
        httpx.post(
            f"{aiops.url}/webhook/alertmanager",
            content=(DATA / "firing.json").read_bytes(),
            headers={"Content-Type": "application/json"},
        ).raise_for_status()

        def proposal() -> dict[str, Any] | None:
            answer = httpx.get(f"{aiops.url}/api/v1/incidents/1")
            found = answer.json().get("proposals") if answer.status_code == 200 else None
            return found[0] if found else None

        pending = eventually(
            lambda: (p := proposal()) and p["state"] == "pending" and p, "a pending proposal"
        )
        assert main(["--config", str(aiops.config_path), "approvals", "approve", str(pending["id"])]) == 0
        eventually(lambda: runs.exists(), "the action started on the host")
        aiops.kill()
        aiops.start()
        unknown = eventually(lambda: (p := proposal()) and p["state"] == "unknown" and p, "outcome unknown")
        time.sleep(5)  # longer than the action would have taken
        final = proposal()
        audit = [entry["kind"] for entry in httpx.get(f"{aiops.url}/api/v1/incidents/1").json()["audit"]]
        output = aiops.stdout()
    finally:
        aiops.stop()
    assert unknown["execution"]["state"] == "unknown"
    assert final is not None and final["state"] == "unknown"
    assert runs.read_text() == "run\n"  # started once, never again
    assert not marker.exists()  # the remote command died with aiops's connection
    assert "clean-up on web-1 — outcome unknown" in output
    assert audit == ["proposed", "approved", "execution_started", "unknown"]
