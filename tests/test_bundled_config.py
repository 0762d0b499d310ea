"""aiops.example.yml, the configuration that ships with aiops, says what the defaults are.

The Prometheus and Alertmanager files that ship with it are checked in tests/bundled/."""

from __future__ import annotations

from pathlib import Path

from aiops.config import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_example_configuration_loads_with_its_defaults() -> None:
    example = load_settings(ROOT / "aiops.example.yml", {"AIOPS_WEBHOOK_TOKEN": "example-token-0123456789"})
    defaults = load_settings(None, {"AIOPS_WEBHOOK_TOKEN": "example-token-0123456789"})
    assert example == defaults
    assert load_settings(ROOT / "aiops.example.yml", {}).webhook.token is None
