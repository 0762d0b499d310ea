"""`aiops runbooks lint|match`, `aiops check` on runbooks, and the matched runbook reaching the announcement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import DATA
from tests.fakes.prometheus import FakePrometheus

DISK = """---
title: Host disk almost full
alerts: [HostOutOfDiskSpace]
match: ['severity=~"warning|critical"']
evidence:
  metrics:
    - name: free_ratio
      query: node_filesystem_avail_bytes{instance="{{ labels.instance }}", mountpoint="{{ labels.mountpoint }}"}
      range: 6h
---
# Symptoms
"""


def aiops(*args: str, cwd: Path, runbooks: Path, **env_: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "AIOPS_RUNBOOKS_DIR": str(runbooks), **env_}
    return subprocess.run(
        [sys.executable, "-m", "aiops", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def folder(tmp_path: Path, **files: str) -> Path:
    root = tmp_path / "runbooks"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_lint_names_each_problem_and_exits_non_zero(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        **{
            "ok.md": DISK,
            "typo.md": "---\nalerts: [A]\nevidence: {metrics: [{name: x, qeury: up}]}\n---\n",
            "unsafe.md": "---\nalerts: [B]\nevidence: {metrics: [{name: x, query: 'up{instance={{ labels.instance }}}'}]}\n---\n",
            "matcher.md": "---\nalerts: [C]\nmatch: ['severity==critical']\n---\n",
        },
    )
    result = aiops("runbooks", "lint", cwd=tmp_path, runbooks=root)
    assert result.returncode == 1
    assert "typo.md: evidence.metrics[0].qeury: is not a known field" in result.stdout
    assert "unsafe.md: evidence.metrics[0].query:" in result.stdout
    assert "matcher.md: match[0]:" in result.stdout
    assert "ok.md" not in result.stdout
    check = aiops("check", cwd=tmp_path, runbooks=root)
    assert check.returncode == 2 and "typo.md: evidence.metrics[0].qeury" in check.stderr
    assert "Traceback" not in result.stderr + check.stderr


def test_lint_passes_a_good_folder(tmp_path: Path) -> None:
    result = aiops("runbooks", "lint", cwd=tmp_path, runbooks=folder(tmp_path, **{"disk.md": DISK}))
    assert result.returncode == 0, result.stdout + result.stderr


def test_match_explains_and_renders_the_queries(tmp_path: Path) -> None:
    root = folder(tmp_path, **{"disk.md": DISK})
    result = aiops("runbooks", "match", str(DATA / "firing.json"), cwd=tmp_path, runbooks=root)
    assert result.returncode == 0, result.stderr
    assert "runbook: disk.md @ uncommitted (front matter alerts + 1 matcher)" in result.stdout
    assert (
        'promql free_ratio: node_filesystem_avail_bytes{instance="web-1:9100", mountpoint="/"}'
        in result.stdout
    )


def test_match_says_plainly_when_nothing_matches(tmp_path: Path) -> None:
    result = aiops("runbooks", "match", str(DATA / "firing.json"), cwd=tmp_path, runbooks=folder(tmp_path))
    assert "no runbook: no runbook for HostOutOfDiskSpace" in result.stdout


def test_replay_shows_the_matched_runbook_and_its_evidence(
    tmp_path: Path, fake_prometheus: FakePrometheus
) -> None:
    root = folder(tmp_path, **{"disk.md": DISK})
    result = aiops(
        "replay",
        str(DATA / "firing.json"),
        cwd=tmp_path,
        runbooks=root,
        AIOPS_PROMETHEUS_URL=fake_prometheus.url,
    )
    assert result.returncode == 0, result.stderr
    assert "disk.md @ uncommitted (front matter alerts + 1 matcher)" in result.stdout
    assert (
        'disk.md: free_ratio: node_filesystem_avail_bytes{instance="web-1:9100", mountpoint="/"}'
        in result.stdout
    )
