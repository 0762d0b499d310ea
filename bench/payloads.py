"""Realistic Alertmanager webhook bodies for the intake benchmark: one group of 10 alerts per request.

The body is a template with the placeholder `@UID@` in its group key, a group label and every fingerprint, so each
request becomes a new delivery (no deduplication) at the cost of one string substitution. The wrk script
(`webhook.lua`) and the Python client (`loadgen.py`) substitute the same template, so both send the same bytes.
A UID is 12 hex digits: phase (2), load-generator thread (2), request counter (8); with the 4 hex digits of the
alert's index it makes a 16-hex-digit fingerprint, the length Alertmanager uses.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

UID = "@UID@"
ALERTS_PER_GROUP = 10
STARTS_AT = "2026-11-24T03:02:11.284Z"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
PROMETHEUS = "http://prometheus:9090"
RUNBOOKS = "https://example.com/runbooks"


def _expr_url(expr: str) -> str:
    return f"{PROMETHEUS}/graph?g0.expr={quote_plus(expr)}&g0.tab=1"


def _alert(index: int) -> dict[str, Any]:
    """Alert `index` of the group: the same rule firing on ten node_exporter hosts, as a storm looks."""
    instance = f"web-{index + 1}:9100"
    value = 7.2 + index * 0.3
    labels = {
        "alertname": "HostOutOfDiskSpace",
        "cluster": f"prod-{UID}",
        "device": "/dev/sda1",
        "fstype": "ext4",
        "instance": instance,
        "job": "node",
        "mountpoint": "/",
        "severity": "warning",
    }
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {
            "summary": f"Host out of disk space (instance {instance})",
            "description": (
                f"Disk is almost full (< 10% left)\n  VALUE = {value:.1f}\n"
                f"  LABELS = map[device:/dev/sda1 fstype:ext4 instance:{instance} job:node mountpoint:/]"
            ),
            "runbook_url": f"{RUNBOOKS}/HostOutOfDiskSpace.md",
        },
        "startsAt": STARTS_AT,
        "endsAt": GO_ZERO_TIME,
        "generatorURL": _expr_url(
            '(node_filesystem_avail_bytes{fstype!~"tmpfs|overlay"} * 100)'
            ' / node_filesystem_size_bytes{fstype!~"tmpfs|overlay"} < 10'
            " and ON (instance, device, mountpoint) node_filesystem_readonly == 0"
        ),
        "fingerprint": f"{UID}{index:04x}",
    }


def template() -> str:
    """The body with `@UID@` placeholders, compact JSON like Alertmanager's."""
    alerts = [_alert(index) for index in range(ALERTS_PER_GROUP)]
    common = {key: value for key, value in alerts[0]["labels"].items() if key != "instance"}
    group = {"alertname": "HostOutOfDiskSpace", "cluster": f"prod-{UID}"}
    body = {
        "receiver": "aiops",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": group,
        "commonLabels": common,
        "commonAnnotations": {"runbook_url": f"{RUNBOOKS}/HostOutOfDiskSpace.md"},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}/{severity=~"warning|critical"}:{alertname="HostOutOfDiskSpace", cluster="prod-'
        + UID
        + '"}',
        "truncatedAlerts": 0,
        "notification_reason": "new_alerts",
        "routeLabels": {"severity": "warning"},
    }
    return json.dumps(body, separators=(",", ":"))


def uid(phase: int, thread: int, counter: int) -> str:
    return f"{phase:02x}{thread:02x}{counter:08x}"


def render(text: str, phase: int, thread: int, counter: int) -> bytes:
    return text.replace(UID, uid(phase, thread, counter)).encode()
