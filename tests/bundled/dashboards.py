"""Reading the bundled Grafana dashboards the way Grafana does: panels inside rows, the PromQL of each target, and
the template variables it substitutes before a query reaches Prometheus."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
DASHBOARDS = GRAFANA / "dashboards"

# What Grafana puts in place of its own variables. $__rate_interval is max(4 × scrape interval, $__interval +
# scrape interval) for the provisioned 15 s scrape interval; $__range stands for a dashboard's usual time range.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^label_values\(\s*(?:(?P<match>.+?)\s*,\s*)?(?P<label>\w+)\s*\)$")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_METRIC = re.compile(r"(?<![\w:])(?:aiops|node)_\w+")


@dataclass(frozen=True)
class Target:
    """One PromQL query of one panel."""

    dashboard: str
    panel: str
    ref: str
    expr: str

    def where(self) -> str:
        return f"{self.dashboard} / {self.panel!r} / {self.ref}"


def load(name: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads((DASHBOARDS / name).read_text())
    return board


def panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, with the panels of a collapsed row (which Grafana nests inside it)."""
    for panel in board.get("panels", []):
        yield panel
        yield from panels(panel)


def targets(board: Mapping[str, Any]) -> Iterator[Target]:
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield Target(
                board["title"], panel.get("title", ""), target.get("refId", ""), target.get("expr", "")
            )


def variables(board: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board.get("templating", {}).get("list", [])}


def variable_query(variable: Mapping[str, Any]) -> str:
    """The query of a `query` variable, stored as a string or (Grafana 10 and later) as an object."""
    query = variable.get("query", "")
    return str(query.get("query", "") if isinstance(query, dict) else query)


def label_values(query: str) -> tuple[str, str | None]:
    """`label_values(selector, label)` → (label, selector) for Prometheus's /api/v1/label/<label>/values."""
    found = _LABEL_VALUES.match(query.strip())
    if not found:
        raise ValueError(f"not a label_values(…) query: {query!r}")
    return found["label"], found["match"]


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """The query as Grafana sends it. A single-valued variable goes in as it is, escaped only for a double-quoted
    PromQL string (Grafana regex-escapes only multi-value and "All" variables, which these dashboards do not
    have: `instance="$instance"` matches exactly the instance aiops links with)."""

    def replace(found: re.Match[str]) -> str:
        name = next(group for group in found.groups() if group)
        if name not in values:
            raise KeyError(f"${name} is neither a variable of the dashboard nor one of Grafana's")
        return values[name].replace("\\", "\\\\").replace('"', '\\"')

    return _VARIABLE.sub(replace, expr)


def used_variables(expr: str) -> set[str]:
    return {next(group for group in found.groups() if group) for found in _VARIABLE.finditer(expr)}


def metric_names(expr: str) -> set[str]:
    """The aiops_* and node_* metric names in a query (string literals left out, so a label value never counts)."""
    return set(_METRIC.findall(_QUOTED.sub('""', expr)))


def exposed_names(exposition: str) -> set[str]:
    """Every series name an exposition can carry, including those of labelled families that have no children
    yet and so show only their # HELP and # TYPE lines."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def slug(title: str) -> str:
    """Grafana's URL slug of a dashboard title, for the titles used here (ASCII words)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
