"""Alert groups of a storm, made from the bundled alerting rules (rules/*.yml) as Alertmanager would send them.

Each group is one rule firing on one target, grouped by `alertname` and `instance` as `prometheus/alertmanager.yml`
groups: the labels are the rule's (severity) plus the series' (job, instance, and device/mountpoint, interface or
unit where the rule's metric has them), and the annotations are the rule's templates rendered with those labels and
a value past the rule's threshold. A group holds one alert per firing series of that target: 1 for a rule with one
series per host (CPU, load, TargetDown), 1–5 for filesystems, interfaces and systemd units.

The mix is what a storm looks like: three rules firing on many targets of the same job take about 80 % of the
groups, and a tail of other rules a few groups each. Everything depends only on `seed`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import yaml

STARTS_AT = datetime(2026, 11, 24, 3, 0, 0, tzinfo=UTC)
PROMETHEUS = "http://prometheus:9090"
STORM_SHARES = (0.45, 0.22, 0.13)  # of all groups, for the three storm rules; the tail gets the rest
ALERTS_WEIGHTS = (
    40,
    25,
    15,
    10,
    10,
)  # chances of 1..5 firing series in a group, where a target has that many
ROLES = ("web", "api", "db", "cache", "queue", "batch")
EXPORTERS = {
    "db": ("mysqld", 9104),
    "cache": ("redis", 9121),
    "web": ("nginx", 9113),
    "queue": ("rabbitmq", 9419),
}
SITES = ("shop", "api", "auth", "status", "cdn", "pay", "docs", "mail")
FILESYSTEMS = (
    {"device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"},
    {"device": "/dev/mapper/vg0-var", "fstype": "ext4", "mountpoint": "/var"},
    {"device": "/dev/sdb1", "fstype": "xfs", "mountpoint": "/var/lib/mysql"},
    {"device": "/dev/nvme0n1p1", "fstype": "xfs", "mountpoint": "/data"},
    {"device": "/dev/sda2", "fstype": "ext4", "mountpoint": "/home"},
)
INTERFACES = tuple(
    {"device": device, "direction": direction}
    for device in ("eth0", "ens5", "bond0")
    for direction in ("receive", "transmit")
)
UNITS = tuple(
    {"name": name, "state": "failed", "type": "service"}
    for name in ("nginx.service", "postgresql.service", "docker.service", "cron.service", "rsyslog.service")
)
CHANNELS = tuple({"channel": name, "outcome": "failed"} for name in ("feishu", "dingtalk", "console"))
OUTCOMES = tuple({"outcome": outcome} for outcome in ("failed", "unknown"))


@dataclass(frozen=True)
class Rule:
    """One alerting rule of rules/*.yml."""

    alert: str
    expr: str
    labels: dict[str, str]
    annotations: dict[str, str]
    file: str

    @property
    def job(self) -> str | None:
        """The job the rule selects (`job="node"`); None for a rule over every job but one (TargetDown)."""
        found = re.search(r'\bjob="([^"]+)"', self.expr)
        return found.group(1) if found else None

    @property
    def has_instance(self) -> bool:
        return not re.search(r"\bby \(job\)", self.expr)


@dataclass(frozen=True)
class Target:
    job: str
    instance: str | None


@dataclass(frozen=True)
class Group:
    """One webhook body, and what it is made of (for the mix)."""

    alertname: str
    job: str
    severity: str
    body: dict[str, Any]

    @property
    def group_key(self) -> str:
        return str(self.body["groupKey"])

    def encoded(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


def load_rules(folder: Path) -> dict[str, list[Rule]]:
    """Alert name → its rules (two when it has a warning and a critical threshold), from every rules/*.yml."""
    rules: dict[str, list[Rule]] = {}
    for path in sorted(folder.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for raw in group["rules"]:
                if "alert" in raw:
                    rule = Rule(
                        raw["alert"],
                        raw["expr"],
                        raw.get("labels", {}),
                        raw.get("annotations", {}),
                        path.name,
                    )
                    rules.setdefault(rule.alert, []).append(rule)
    return rules


def storm(rules_dir: Path, groups: int, seed: int) -> list[Group]:
    """`groups` distinct groups (no two with the same alert name and target), in the order they are posted."""
    rng = random.Random(seed)
    rules = load_rules(rules_dir)
    fleets = _fleets(groups)
    capacity = {name: len(_targets(variants[0], fleets)) for name, variants in rules.items()}
    counts = _mix(rules, capacity, groups, rng)
    made = []
    for name, count in counts.items():
        for target in rng.sample(_targets(rules[name][0], fleets), count):
            made.append(_group(_severity(rules[name], rng), target, rng))
    rng.shuffle(made)
    return made


def describe(groups: list[Group]) -> dict[str, Any]:
    """How many groups and alerts per alert name and per job, the record of what was posted."""
    alerts = [len(group.body["alerts"]) for group in groups]
    return {
        "groups": len(groups),
        "alerts": sum(alerts),
        "alerts_per_group": dict(sorted(Counter(alerts).items())),
        "by_alertname": dict(Counter(group.alertname for group in groups).most_common()),
        "by_job": dict(Counter(group.job for group in groups).most_common()),
        "by_severity": dict(Counter(group.severity for group in groups).most_common()),
    }


# --- the mix ------------------------------------------------------------------------------------------------


def _mix(
    rules: dict[str, list[Rule]], capacity: dict[str, int], groups: int, rng: random.Random
) -> dict[str, int]:
    """Groups per alert name: three storm rules over large fleets, and a Zipf-like tail of other rules with at
    most 2.5 % of the groups each."""
    large = sorted(name for name, size in capacity.items() if size >= groups)
    stormers = rng.sample(large, 3)
    counts = Counter({name: int(groups * share) for name, share in zip(stormers, STORM_SHARES, strict=True)})
    tail = [name for name in sorted(rules) if name not in stormers]
    rng.shuffle(tail)
    weights = [1 / (rank + 1) for rank in range(len(tail))]
    cap = max(2, groups // 40)
    for _ in range(groups - sum(counts.values())):
        open_tail = [
            (name, weight)
            for name, weight in zip(tail, weights, strict=True)
            if counts[name] < min(cap, capacity[name])
        ]
        if open_tail and rng.random() < 0.9:
            name = rng.choices([n for n, _ in open_tail], [w for _, w in open_tail])[0]
        else:
            name = min(stormers, key=lambda n: counts[n] / capacity[n])
        counts[name] += 1
    return {name: count for name, count in counts.most_common() if count}


def _fleets(groups: int) -> dict[str, list[Target]]:
    """Targets per job; node and blackbox fleets are large enough for any one rule to fire on every group."""
    hosts = [f"{ROLES[n % len(ROLES)]}-{n // len(ROLES) + 1:03d}" for n in range(max(groups, 60))]
    fleets: dict[str, list[Target]] = {
        "node": [Target("node", f"{host}:9100") for host in hosts],
        "blackbox": [
            Target("blackbox", f"https://{SITES[n % len(SITES)]}-{n // len(SITES) + 1:02d}.example.com")
            for n in range(max(groups, 40))
        ],
        "aiops": [Target("aiops", f"aiops-{n}:18789") for n in (1, 2)],
    }
    exporters = [
        Target(EXPORTERS[host.split("-")[0]][0], f"{host}:{EXPORTERS[host.split('-')[0]][1]}")
        for host in hosts
        if host.split("-")[0] in EXPORTERS
    ]
    fleets["*"] = fleets["node"] + exporters + [Target("blackbox", "prober-1:9115")]
    return fleets


def _targets(rule: Rule, fleets: dict[str, list[Target]]) -> list[Target]:
    if not rule.has_instance:
        return [Target(rule.job or "", None)]
    return fleets.get(rule.job or "*", [])


def _severity(variants: list[Rule], rng: random.Random) -> Rule:
    """Of a warning and a critical rule of one alert, the critical one fires a third of the time."""
    ordered = sorted(variants, key=lambda rule: rule.labels.get("severity") != "critical")
    return ordered[0] if rng.random() < 1 / 3 else ordered[-1]


# --- one group ----------------------------------------------------------------------------------------------


def _series(rule: Rule) -> tuple[dict[str, str], ...]:
    """The labels that tell apart the rule's series on one target, as node_exporter and aiops label them."""
    expr = rule.expr
    if "node_filesystem" in expr:
        return FILESYSTEMS
    if "node_network" in expr:
        return INTERFACES
    if "node_systemd" in expr:
        return UNITS
    if "aiops_notifications" in expr:
        return CHANNELS
    if "aiops_executions" in expr:
        return OUTCOMES
    return ({},)


def _group(rule: Rule, target: Target, rng: random.Random) -> Group:
    series = _series(rule)
    weights = ALERTS_WEIGHTS[: len(series)]
    chosen = rng.sample(series, rng.choices(range(1, len(weights) + 1), weights)[0])
    started = STARTS_AT - timedelta(seconds=rng.randrange(0, 3600))
    alerts = [_alert(rule, target, labels, started, rng) for labels in chosen]
    group_labels = {"alertname": rule.alert}
    if target.instance is not None:
        group_labels["instance"] = target.instance
    route = '{}/{alertname=~"Aiops.*"}' if rule.alert.startswith("Aiops") else "{}"
    matchers = ", ".join(f'{key}="{value}"' for key, value in group_labels.items())
    body = {
        "receiver": "aiops",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": group_labels,
        "commonLabels": _common([alert["labels"] for alert in alerts]),
        "commonAnnotations": _common([alert["annotations"] for alert in alerts]),
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f"{route}:{{{matchers}}}",
        "truncatedAlerts": 0,
        "notification_reason": "new_alerts",
    }
    return Group(rule.alert, target.job, rule.labels.get("severity", ""), body)


def _alert(
    rule: Rule, target: Target, series: dict[str, str], started: datetime, rng: random.Random
) -> dict[str, Any]:
    labels = {"alertname": rule.alert, "job": target.job, **rule.labels, **series}
    if target.instance is not None:
        labels["instance"] = target.instance
    labels = dict(sorted(labels.items()))
    value = _value(rule.expr, rng)
    identity = json.dumps(labels, sort_keys=True).encode()
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {key: render(text, labels, value).strip() for key, text in rule.annotations.items()},
        "startsAt": started.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": f"{PROMETHEUS}/graph?g0.expr={quote_plus(rule.expr.strip())}&g0.tab=1",
        "fingerprint": hashlib.sha256(identity).hexdigest()[
            :16
        ],  # Alertmanager's is a hash of the labels too
    }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    first, *rest = maps
    return {key: value for key, value in first.items() if all(other.get(key) == value for other in rest)}


_COMPARISON = re.compile(r"(<=|>=|==|<|>)\s*(\d+(?:\.\d+)?(?:\s*\*\s*\d+(?:\.\d+)?)*)")


def _value(expr: str, rng: random.Random) -> float:
    """A sample past the rule's first threshold: below it for `<`, above it for `>`, equal to it for `==`."""
    found = _COMPARISON.search(expr)
    if found is None:
        return 1.0
    operator, operand = found.groups()
    threshold = 1.0
    for factor in operand.split("*"):
        threshold *= float(factor)
    if operator == "==":
        return threshold
    if operator.startswith("<"):
        return threshold * rng.uniform(0.2, 0.95) if threshold > 0 else rng.uniform(0.05, 0.4)
    if 0 < threshold < 1:  # a ratio: past the line, and below 100 %
        return threshold + (1 - threshold) * rng.uniform(0.05, 0.6)
    return threshold * rng.uniform(1.05, 2.5) if threshold > 0 else float(rng.randint(1, 5))


# --- Prometheus's annotation templates (the subset rules/*.yml uses) --------------------------------------------

_ACTION = re.compile(r"{{\s*(.*?)\s*}}", re.S)


def render(template: str, labels: dict[str, str], value: float) -> str:
    """`{{ $labels.x }}`, `{{ $value | fn }}`, `{{ if … }}…{{ else }}…{{ end }}`, as Prometheus renders them."""
    out: list[str] = []
    blocks: list[tuple[bool, bool]] = []  # (the enclosing text is shown, this `if` held)
    shown = True
    for index, part in enumerate(_ACTION.split(template)):
        if index % 2 == 0:
            if shown:
                out.append(part)
        elif part.startswith("if "):
            held = _condition(part[3:], labels, value)
            blocks.append((shown, held))
            shown = shown and held
        elif part == "else":
            outer, held = blocks[-1]
            shown = outer and not held
        elif part == "end":
            shown = blocks.pop()[0]
        elif shown:
            out.append(_pipeline(part, labels, value))
    return "".join(out)


def _operand(word: str, labels: dict[str, str], value: float) -> Any:
    if word == "$value":
        return value
    if word.startswith("$labels."):
        return labels.get(word.removeprefix("$labels."), "")
    if word.startswith('"'):
        return json.loads(word)
    return float(word)


def _condition(text: str, labels: dict[str, str], value: float) -> bool:
    words = text.split()
    if len(words) == 1:
        return bool(_operand(words[0], labels, value))
    function, left, right = words
    a, b = _operand(left, labels, value), _operand(right, labels, value)
    return {"lt": a < b, "gt": a > b, "le": a <= b, "ge": a >= b, "eq": a == b}[function]


def _pipeline(text: str, labels: dict[str, str], value: float) -> str:
    head, *stages = (stage.strip() for stage in text.split("|"))
    result: Any = _operand(head, labels, value)
    for stage in stages:
        function, _, argument = stage.partition(" ")
        if function == "printf":
            result = json.loads(argument) % result
        elif function == "humanizePercentage":
            result = f"{result * 100:.4g}%"
        elif function == "humanizeDuration":
            result = _duration(float(result))
        else:
            raise ValueError(f"template function {function!r} is not rendered by bench/storm_payloads.py")
    return str(result)


def _duration(seconds: float) -> str:
    """Prometheus's humanizeDuration: `1d 2h 3m 4s`, or `50ms` below a second."""
    if abs(seconds) < 1:
        return f"{seconds * 1000:.4g}ms"
    whole = int(abs(seconds))
    days, hours, minutes, rest = whole // 86400, whole // 3600 % 24, whole // 60 % 60, whole % 60
    sign = "-" if seconds < 0 else ""
    if days:
        return f"{sign}{days}d {hours}h {minutes}m {rest}s"
    if hours:
        return f"{sign}{hours}h {minutes}m {rest}s"
    if minutes:
        return f"{sign}{minutes}m {rest}s"
    return f"{sign}{abs(seconds):.4g}s"
