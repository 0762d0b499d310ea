"""`aiops runbooks lint|match`, `aiops check` on runbooks, and the matched runbook reaching the announcement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiops as package
from tests.conftest import DATA
from tests.fakes.prometheus import FakePrometheus

# The checkout under test, not whichever copy of the package the interpreter has installed.
SOURCE = str(Path(package.__file__).resolve().parents[1])

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
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": SOURCE, "AIOPS_RUNBOOKS_DIR": str(runbooks), **env_}
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


VACUUM = DISK.replace("---\n# Symptoms", "actions: [journal-vacuum]\n---\n# Symptoms")
CATALOG = (
    "journal-vacuum:\n  description: Drop old journal files\n  argv: [journalctl, --vacuum-size=500M]\n"
    "  target: labels.instance\n  risk: low\n  timeout: 30s\n"
)


def test_lint_takes_a_folder_and_its_own_catalog_without_a_configuration(tmp_path: Path) -> None:
    configured = folder(tmp_path, **{"broken.md": "---\nalerts: [A\n---\n"})
    given = tmp_path / "mine"
    given.mkdir()
    (given / "disk.md").write_text(VACUUM.replace("journal-vacuum]", "journal-vacuum, reboot-host]"))
    (given / "actions.yml").write_text(CATALOG)
    result = aiops("runbooks", "lint", str(given), cwd=tmp_path, runbooks=configured)
    assert result.returncode == 1
    assert result.stdout == "disk.md: actions[1]: 'reboot-host' is not an action in actions.yml\n"
    assert "broken.md" not in result.stdout + result.stderr, "the configured folder is not the one linted"
    (given / "disk.md").write_text(VACUUM)
    fine = aiops("runbooks", "lint", "mine", cwd=tmp_path, runbooks=configured)
    assert (fine.returncode, fine.stdout, fine.stderr) == (0, "mine: all runbooks are fine\n", "")


def test_lint_of_a_folder_without_a_catalog_checks_against_the_configured_one_and_says_so(
    tmp_path: Path,
) -> None:
    configured = folder(tmp_path, **{"actions.yml": CATALOG})
    given = tmp_path / "mine"
    given.mkdir()
    (given / "disk.md").write_text(VACUUM.replace("journal-vacuum]", "journal-vacuum, reboot-host]"))
    result = aiops("runbooks", "lint", "mine", cwd=tmp_path, runbooks=configured)
    assert result.returncode == 1
    assert (
        result.stdout == f"disk.md: actions[1]: 'reboot-host' is not an action in {configured}/actions.yml\n"
    )
    assert (
        f"mine has no actions.yml; checking action ids against {configured}/actions.yml (runbooks.dir)"
        in (result.stderr)
    )


def test_lint_of_a_folder_with_no_catalog_anywhere_skips_action_ids_and_says_so(tmp_path: Path) -> None:
    given = tmp_path / "mine"
    given.mkdir()
    (given / "disk.md").write_text(VACUUM)
    result = aiops("runbooks", "lint", "mine", cwd=tmp_path, runbooks=tmp_path / "absent")
    assert result.returncode == 0, result.stdout
    assert (
        f"neither mine nor runbooks.dir ({tmp_path / 'absent'}) has actions.yml; not checking action ids"
        in (result.stderr)
    )
    # The container's environment (every interface, no webhook token) is not a configuration `serve` accepts;
    # a runbook author linting a folder with that image is not stopped by it.
    unserved = aiops(
        "runbooks", "lint", "mine", cwd=tmp_path, runbooks=tmp_path / "absent", AIOPS_LISTEN="0.0.0.0:18789"
    )
    assert unserved.returncode == 0, unserved.stderr
    assert "the configuration cannot be loaded (webhook: no token or basic_auth" in unserved.stderr
    assert "not checking action ids" in unserved.stderr


def test_match_takes_a_runbooks_folder(tmp_path: Path) -> None:
    configured = folder(tmp_path)
    given = tmp_path / "mine"
    given.mkdir()
    (given / "disk.md").write_text(DISK)
    result = aiops(
        "runbooks",
        "match",
        str(DATA / "firing.json"),
        "--runbooks",
        "mine",
        cwd=tmp_path,
        runbooks=configured,
    )
    assert result.returncode == 0, result.stderr
    assert "runbook: disk.md @ uncommitted (front matter alerts + 1 matcher)" in result.stdout


def test_a_folder_or_payload_that_cannot_be_used_is_one_line_naming_the_argument(tmp_path: Path) -> None:
    root = folder(tmp_path, **{"disk.md": DISK})
    (tmp_path / "broken.json").write_text('{"version": "4", ')
    (tmp_path / "latin1.json").write_bytes('{"receiver": "Überlauf"}'.encode("latin-1"))
    firing = str(DATA / "firing.json")
    cases = {
        ("runbooks", "lint", "absent"): "aiops: DIR absent: does not exist",
        ("runbooks", "lint", "runbooks/disk.md"): "aiops: DIR runbooks/disk.md: is not a folder",
        ("runbooks", "match", firing, "--runbooks", "absent"): "aiops: --runbooks absent: does not exist",
        ("runbooks", "match", firing, "--runbooks", firing): f"aiops: --runbooks {firing}: is not a folder",
        (
            "runbooks",
            "match",
            "none.json",
        ): "aiops: PAYLOAD none.json: cannot read it: No such file or directory",
        ("runbooks", "match", "runbooks"): "aiops: PAYLOAD runbooks: cannot read it: Is a directory",
        ("runbooks", "match", "broken.json"): "aiops: PAYLOAD broken.json: is not an Alertmanager payload: "
        "(body): Invalid JSON",
        ("runbooks", "match", "latin1.json"): "aiops: PAYLOAD latin1.json: is not UTF-8 text",
    }
    for args, message in cases.items():
        result = aiops(*args, cwd=tmp_path, runbooks=root)
        assert result.returncode == 2, (args, result.stdout)
        assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, (args, result.stderr)
        assert result.stdout == ""
