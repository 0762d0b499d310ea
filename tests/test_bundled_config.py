"""The configuration files that ship with aiops are valid for the tools that read them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from aiops.config import load_settings
from tests.support.binaries import require

ROOT = Path(__file__).resolve().parents[1]


def test_alertmanager_config_passes_amtool() -> None:
    result = subprocess.run(
        [require("amtool"), "check-config", str(ROOT / "prometheus" / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "webhook" in result.stdout.lower() or "SUCCESS" in result.stdout


def test_example_configuration_loads_with_its_defaults() -> None:
    example = load_settings(ROOT / "aiops.example.yml", {"AIOPS_WEBHOOK_TOKEN": "example-token-0123456789"})
    defaults = load_settings(None, {"AIOPS_WEBHOOK_TOKEN": "example-token-0123456789"})
    assert example == defaults
    assert load_settings(ROOT / "aiops.example.yml", {}).webhook.token is None
