"""Announcements for the channel tests, built from the pipeline's own dataclasses: a plain one, and one whose
alert labels, model output and host output are hostile (quotes, newlines, markup, mentions) and huge."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from aiops.channels import Announcement, Digest, DigestEntry, Purpose
from aiops.channels.records import ExecutionRecord, ProposalRecord
from aiops.models import (
    Alert,
    Correlation,
    Diagnosis,
    Evidence,
    Incident,
    LlmUsage,
    RunbookMatch,
    SeriesSummary,
    Triage,
)
from aiops.store.actions import argv_hash

NOW = datetime(2026, 11, 24, 3, 2, 11, tzinfo=UTC)
BASE_URL = "https://aiops.example.com"
APPROVAL = "https://aiops.example.com/approvals/"
HOSTILE = 'web-1"}\n]}</at><at id=all></at> **bold** [x](https://evil.example) `code` # \\ @all ~~s~~ <b>|'


def announcement(purpose: Purpose = "opened", *, hostile: bool = False, huge: bool = False) -> Announcement:
    value = HOSTILE if hostile else "web-1:9100"
    labels = {"alertname": "HostOutOfDiskSpace", "instance": value, "severity": "critical"}
    incident = Incident(
        7,
        "group",
        "resolved" if purpose == "resolved" else "open",
        f"Host out of disk space ({value})",
        "critical",
        labels,
        NOW,
        NOW,
        NOW + timedelta(minutes=20) if purpose == "resolved" else None,
    )
    if purpose == "resolved":
        return Announcement(purpose, incident, None, f"{BASE_URL}/incidents/7", mentions=mentions(hostile))
    if purpose == "action":
        return Announcement(
            purpose,
            incident,
            None,
            f"{BASE_URL}/incidents/7",
            reported=reported(value, huge),
            mentions=mentions(hostile),
        )
    return Announcement(
        purpose,
        incident,
        triage(incident, labels, value, huge),
        f"{BASE_URL}/incidents/7",
        proposals=proposals(value),
        approval_links={11: f"{APPROVAL}tok-eleven", 12: f"{APPROVAL}tok-twelve"},
        mentions=mentions(hostile),
    )


def mentions(hostile: bool) -> tuple[str, ...]:
    return ("ou_3f9a", "13800000000", "</at><at id=all>") if hostile else ("ou_3f9a",)


def triage(incident: Incident, labels: dict[str, str], value: str, huge: bool) -> Triage:
    alerts = tuple(
        Alert(f"f{i}", "firing", {**labels, "n": str(i)}, {"summary": value}, NOW, None, "")
        for i in range(40 if huge else 1)
    )
    series = SeriesSummary({"instance": value, "mountpoint": "/"}, 120, 10.0, 95.0, 50.0, 95.0, "rising")
    evidence = tuple(
        Evidence(
            "prometheus" if i % 2 else "loki",
            f"{value} query {i}",
            f'node_filesystem_avail_bytes{{instance="{value}"}}',
            series=(series,) * (8 if huge else 1),
            lines=tuple(
                f"log line {j}: {value} " + "x" * (400 if huge else 10) for j in range(20 if huge else 2)
            ),
        )
        for i in range(500 if huge else 2)
    )
    diagnosis = Diagnosis(
        "llm",
        f"The disk on {value} is filling.\nSecond line: {value}" + (" padding" * 3000 if huge else ""),
        probable_cause=f"Logs grow on {value}",
        confidence="high",
        next_steps=tuple(
            f"step {i}: look at {value}" + " more" * (100 if huge else 0) for i in range(60 if huge else 3)
        ),
        usage=LlmUsage(model="MiniMax-M2", calls=1),
    )
    runbook = RunbookMatch(f"disk/{value}.md", "0123456789abcdef", "alertname matches")
    return Triage(Correlation(incident, "opened", alerts, alerts), runbook, evidence, diagnosis)


def proposals(value: str) -> tuple[ProposalRecord, ...]:
    def proposal(
        number: int, action_id: str, host: str | None, argv: tuple[str, ...], **rest: Any
    ) -> ProposalRecord:
        hashed = argv_hash(host, argv)
        common: dict[str, Any] = {
            "risk": "low",
            "state": "pending",
            "expires_at": NOW + timedelta(minutes=30),
        }
        return ProposalRecord(number, 7, 1, action_id, host, argv, hashed, **{**common, **rest})

    return (
        proposal(11, "clean_journal", value, ("journalctl", "--vacuum-size=200M", value)),
        proposal(12, "restart_service", value, ("systemctl", "restart", "nginx"), risk="high"),
        proposal(13, "rm_rf", None, (), state="refused", detail=f"not allowed: {value}"),
    )


def reported(value: str, huge: bool) -> ProposalRecord:
    output = "\n".join(f"freed {i} MB on {value}" for i in range(2000 if huge else 3))
    return dataclasses.replace(
        proposals(value)[0],
        state="succeeded",
        decided_by=f"alice {value}",
        decided_via="web",
        execution=ExecutionRecord("succeeded", exit_status=0, stdout=output),
    )


def digest(count: int = 30, hostile: bool = False) -> Digest:
    value = HOSTILE if hostile else "web"
    entries = tuple(
        DigestEntry(
            i,
            f"Disk full on {value}-{i}",
            "critical" if i % 3 else "warning",
            f"Alert{i % 25}{value}",
            f"{BASE_URL}/incidents/{i}",
        )
        for i in range(1, count + 1)
    )
    return Digest(entries, BASE_URL)
