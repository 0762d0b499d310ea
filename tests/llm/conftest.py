"""A runbooks folder with a runbook and a catalog, and the model's answer the tests script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes.minimax import KEY, FakeMiniMax

RUNBOOK = """---
title: Host disk almost full
alerts: [HostOutOfDiskSpace]
actions: [journal-vacuum, restart-service]
---
# Symptoms
The root filesystem is nearly full.

# What to do
- Vacuum the journal: `journalctl --vacuum-size=500M`.
- Find large files with `du -xh / | sort -h | tail`.
"""
CATALOG = """
journal-vacuum:
  description: Shrink the systemd journal to 500 MB
  argv: [journalctl, --vacuum-size=500M]
  target: labels.instance
  risk: low
  timeout: 60s
restart-service:
  description: Restart a systemd unit
  argv: [systemctl, restart, "{unit}"]
  params: {unit: {from: proposal, pattern: '^[a-zA-Z0-9@._-]{1,64}$'}}
  target: labels.instance
  risk: high
  timeout: 60s
restart-all:
  description: Reboot the host
  argv: [systemctl, reboot]
  target: labels.instance
  risk: high
  timeout: 60s
"""
GOOD = {
    "summary": "The root filesystem of web-1 is 93% full and still filling.",
    "probable_cause": "The systemd journal grew without a size limit.",
    "confidence": "HIGH",
    "evidence": ["E1", "E9", "E1"],
    "impact": "Writes on web-1 will fail within the hour.",
    "next_steps": ["Vacuum the journal", "Set SystemMaxUse in journald.conf"],
    "actions": [
        {"id": "journal-vacuum", "reason": "the journal is the largest consumer", "params": {"x": "y"}},
        {"id": "restart-service", "reason": "restart journald", "params": {"unit": "systemd-journald"}},
    ],
}


@pytest.fixture
def runbooks(tmp_path: Path) -> Path:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "HostOutOfDiskSpace.md").write_text(RUNBOOK)
    (folder / "actions.yml").write_text(CATALOG)
    return folder


def llm(fake: FakeMiniMax, **overrides: Any) -> dict[str, Any]:
    return {
        "api_key": KEY,
        "base_url": fake.base_url,
        "provider": "minimax",
        "backoff": 0.05,
        "call_timeout": 5,
        **overrides,
    }
