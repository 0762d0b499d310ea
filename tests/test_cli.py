"""`aiops replay` and `aiops db upgrade` as a runbook author and an operator run them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import aiops as package
from aiops.config import Settings
from aiops.store.migrate import migrations
from tests.conftest import DATA
from tests.fakes.prometheus import FakePrometheus

# The checkout under test, not whichever copy of the package the interpreter has installed.
SOURCE = str(Path(package.__file__).resolve().parents[1])


def aiops(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": "/usr/bin:/bin", "PYTHONPATH": SOURCE, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "aiops", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=60,
    )


def test_replay_prints_what_would_be_posted_and_stores_nothing(
    tmp_path: Path, fake_prometheus: FakePrometheus
) -> None:
    result = aiops(
        "replay", str(DATA / "firing.json"), cwd=tmp_path, env={"AIOPS_PROMETHEUS_URL": fake_prometheus.url}
    )
    assert result.returncode == 0, result.stderr
    assert "--- would post to console ---" in result.stdout
    assert "==== [warning] Host out of disk space (instance web-1:9100) ====" in result.stdout
    assert "min 10, max 95, last 95" in result.stdout
    assert not (tmp_path / "data").exists(), "replay must not create or touch the real store"


def test_replay_names_what_is_wrong_with_a_payload(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads((DATA / "firing.json").read_text()), "version": "3"}))
    result = aiops("replay", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "version: unsupported version '3'" in result.stderr and "Traceback" not in result.stderr
    missing = aiops("replay", str(tmp_path / "none.json"), cwd=tmp_path)
    assert missing.returncode == 2 and f"PAYLOAD {tmp_path / 'none.json'}: cannot read it" in missing.stderr


def test_db_upgrade(tmp_path: Path) -> None:
    env = {"AIOPS_DATABASE_URL": f"sqlite:///{tmp_path}/x/aiops.db"}
    first = aiops("db", "upgrade", cwd=tmp_path, env=env)
    second = aiops("db", "upgrade", cwd=tmp_path, env=env)
    assert first.returncode == 0 and json.loads(first.stdout) == {
        "applied": [m.version for m in migrations()]
    }
    assert second.stdout.strip() == "the database is up to date"


def test_db_upgrade_reports_an_unreachable_database(tmp_path: Path) -> None:
    result = aiops(
        "db", "upgrade", cwd=tmp_path, env={"AIOPS_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/x"}
    )
    assert result.returncode == 1 and "database.url cannot be migrated" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_names_catalog_problems_and_targets_that_can_never_run(tmp_path: Path) -> None:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "actions.yml").write_text(
        "silence:\n  description: mine\n  argv: [echo]\n  target: labels.instance\n  risk: low\n  timeout: 5s\n"
        "reboot-db:\n  description: Reboot\n  argv: [reboot]\n  target: host:db-9\n  risk: high\n  timeout: 5s\n"
        "no-pattern:\n  description: x\n  argv: [echo, '{x}']\n  params: {x: {from: labels.x}}\n"
        "  target: labels.instance\n  risk: low\n  timeout: 5s\n"
    )
    (tmp_path / "aiops.yml").write_text(f"runbooks:\n  dir: {folder}\n")
    result = aiops("--config", "aiops.yml", "check", cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert "actions.yml: no-pattern.params.x.pattern: is required" in result.stderr
    assert "reboot-db.target: 'db-9' is not a host under `hosts:`" not in result.stderr  # reported once fixed
    assert "Traceback" not in result.stderr
    (folder / "actions.yml").write_text(
        "silence:\n  description: mine\n  argv: [echo]\n  target: labels.instance\n  risk: low\n  timeout: 5s\n"
        "reboot-db:\n  description: Reboot\n  argv: [reboot]\n  target: host:db-9\n  risk: high\n  timeout: 5s\n"
    )
    result = aiops("--config", "aiops.yml", "check", cwd=tmp_path)
    assert result.returncode == 2
    assert "actions.yml: silence: is the name of a built-in action" in result.stderr
    assert (
        "actions.yml: reboot-db.target: 'db-9' is not a host under `hosts:`; it can never run"
        in result.stderr
    )


def test_serve_says_how_the_models_cost_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    from aiops.cli import _log_pricing

    caplog.set_level(logging.INFO, logger="aiops")

    def logged(**llm: object) -> list[str]:
        caplog.clear()
        _log_pricing(
            Settings.model_validate({"llm": {"api_key": "k" * 20, **llm}}), logging.getLogger("aiops")
        )
        return [record.getMessage() for record in caplog.records]

    [local] = logged(base_url="http://ollama:11434/v1", model="qwen2.5:7b")
    assert "llm.model qwen2.5:7b at http://ollama:11434/v1 counts as a local model, no cost" in local
    [unpriced] = logged(model="deepseek-chat")
    assert (
        "llm.model deepseek-chat has no price" in unpriced and "aiops_llm_unpriced_tokens_total" in unpriced
    )
    assert logged() == []  # MiniMax's list price
    assert logged(base_url="http://127.0.0.1:8080/v1", local=True) == []  # the configuration says so already
