"""The incident page as a browser renders it: a real `aiops serve` and headless Chromium, with the evidence from
a fake Prometheus on the page."""

from __future__ import annotations

import contextlib
import html
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aiops.config import ENV_OVERRIDES
from tests.conftest import DATA
from tests.fakes.prometheus import FakePrometheus
from tests.support import stack as s
from tests.support.binaries import require
from tests.support.service import AiopsProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

EXPRESSION = "(node_filesystem_avail_bytes * 100) / node_filesystem_size_bytes < 10"
CHROMIUM_TIMEOUT = 60.0


def chromium(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium in a session of its own; whatever it leaves behind is killed with that session."""
    home = tmp_path / "chromium-home"
    home.mkdir(exist_ok=True)
    argv = [
        require("chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *arguments,
    ]
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT:g}s: {argv}\n{stderr[-4000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):  # helpers (zygote, renderer) that outlived the browser
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


@pytest.fixture
def aiops(tmp_path: Path, fake_prometheus: FakePrometheus) -> Any:
    workdir = tmp_path / "aiops"
    workdir.mkdir()
    config = {
        "database": {"url": f"sqlite:///{workdir / 'aiops.db'}"},
        "prometheus": {"url": fake_prometheus.url},
        "queue": {"poll_interval": "200ms"},
    }
    process = AiopsProcess(workdir, config, env=dict.fromkeys(ENV_OVERRIDES, ""))
    try:
        process.start()
        yield process
    finally:
        process.stop()


def _logs(process: AiopsProcess) -> str:
    return s.report([("aiops stderr", process.stderr()[-6000:]), ("aiops stdout", process.stdout()[-6000:])])


def _section(dom: str, name: str) -> str:
    found = re.search(rf'<section id="{name}">(.*?)</section>', dom, re.S)
    assert found, f"no section#{name} in the page:\n{dom[:4000]}"
    return found.group(1)


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)))


def test_incident_page_shows_alert_and_evidence(tmp_path: Path, aiops: AiopsProcess) -> None:
    answer = s.http().post(
        f"{aiops.url}/webhook/alertmanager",
        content=(DATA / "firing.json").read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 200, f"{answer.status_code} {answer.text}\n{_logs(aiops)}"

    def triaged() -> dict[str, Any] | None:
        response = s.http().get(f"{aiops.url}/api/v1/incidents/1")
        detail: dict[str, Any] = response.json()
        return detail if response.status_code == 200 and detail["triages"] else None

    detail = s.eventually(triaged, timeout=30, what="a triage of incident 1", logs=lambda: _logs(aiops))
    evidence = [item for item in detail["triages"][0]["evidence"] if item["source"] == "prometheus"]
    assert [item["query"] for item in evidence] == [EXPRESSION], evidence
    expected_max = evidence[0]["series"][0]["max"]
    assert expected_max == 95, evidence

    url = f"{aiops.url}/incidents/1"
    dumped = chromium(tmp_path, "--dump-dom", url)
    dom = dumped.stdout
    assert dumped.returncode == 0 and "</html>" in dom, (
        f"chromium: {dumped.returncode}\n{dumped.stderr[-4000:]}"
    )

    alerts = _text(_section(dom, "alerts"))
    assert "HostOutOfDiskSpace" in alerts, alerts
    section = _section(dom, "evidence")
    shown = _text(section)
    assert EXPRESSION in shown, shown
    cells = [_text(cell).strip() for cell in re.findall(r"<td>(.*?)</td>", section, re.S)]
    assert "95" in cells, f"the series' max is not in the evidence table: {cells}"
    assert "instance=" in shown or "web-1:9100" in shown, shown

    screenshot = tmp_path / "incident.png"
    shot = chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,1600", url)
    assert screenshot.exists(), f"no screenshot: chromium {shot.returncode}\n{shot.stderr[-4000:]}"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10 * 1024, (
        f"{screenshot.stat().st_size} bytes is too small for the page"
    )
