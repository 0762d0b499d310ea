"""The alerting rules that ship in `rules/`, read as Prometheus would, for the tests that check them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
RULE_TESTS = RULES / "tests"


@dataclass(frozen=True)
class BundledAlert:
    """One alerting rule; an alert name can have several (one per severity)."""

    name: str
    expr: str
    labels: dict[str, str]
    annotations: dict[str, str]
    file: Path


def rule_files() -> list[Path]:
    return sorted(RULES.glob("*.yml"))


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS.glob("*.yml"))


def bundled_alerts() -> list[BundledAlert]:
    """Every alerting rule in `rules/*.yml`, in file order (recording rules are left out)."""
    return [
        BundledAlert(
            name=rule["alert"],
            expr=rule["expr"],
            labels=dict(rule.get("labels") or {}),
            annotations=dict(rule.get("annotations") or {}),
            file=path,
        )
        for path in rule_files()
        for group in _load(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a mapping with `groups`")
    return document
