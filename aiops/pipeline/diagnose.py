"""Diagnose: explain the incident from its evidence. Without an LLM, the offline diagnosis says plainly what the
alert and the evidence show, labelled as not coming from a model."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Protocol

from jinja2 import Environment

from aiops.i18n import english, message
from aiops.models import Correlation, Diagnosis, Evidence, RunbookMatch, Text
from aiops.sources.history import remembered

_TARGET_LABELS = ("instance", "host", "node", "pod", "service", "job")
_HEADING = re.compile(r"^#{1,6}\s+(.*)$")
_STEP = re.compile(r"^\s{0,3}(?:[-*+]|\d+[.)])\s+")
_REMEDIATION = re.compile(r"remediat|mitigat|what to do|fix|resolution|steps|处理|修复|解决|操作", re.I)
# How the model's diagnoser names a proposal it dropped, and an evidence item the diagnosis rests on.
_DROPPED = re.compile(r"(?P<action>[^:]+): not an action the runbook allows \((?P<where>.*)\)")
_REF = re.compile(r"(?P<id>E\d+): (?P<title>.*)", re.S)


class Diagnoser(Protocol):
    """Turns an incident and its evidence into a diagnosis; raises when it cannot (the offline one is the fallback)."""

    async def diagnose(
        self, correlation: Correlation, runbook: RunbookMatch, evidence: Sequence[Evidence]
    ) -> Diagnosis: ...


class OfflineDiagnoser:
    def __init__(self, templates: Environment) -> None:
        self._template = templates.get_template("diagnosis/offline.txt.j2")

    async def diagnose(
        self, correlation: Correlation, runbook: RunbookMatch, evidence: Sequence[Evidence]
    ) -> Diagnosis:
        return self.now(correlation, evidence, runbook)

    def now(self, correlation: Correlation, evidence: Sequence[Evidence], runbook: RunbookMatch) -> Diagnosis:
        """What the alert and the evidence say — first what worked on this target before, and what did not —
        with the runbook's own steps as the next steps."""
        alerts = correlation.new_firing or correlation.alerts
        summary = self._template.render(
            alerts=_one_per_name(alerts),
            targets=_targets(alerts),
            evidence=evidence,
            remembered=remembered(evidence),
        )
        return Diagnosis(source="offline", summary=summary.strip(), next_steps=guidance(runbook.body))


def in_messages(diagnosis: Diagnosis, evidence: Sequence[Evidence]) -> Diagnosis:
    """The model's diagnosis with what the diagnoser wrote about it in English — the proposals it dropped, the
    titles of the evidence cited — as messages, said in the reader's language; the model's own words unchanged."""
    titles = {english(item.title): item.title for item in evidence}
    return dataclasses.replace(
        diagnosis,
        dropped_actions=tuple(_dropped(text) for text in diagnosis.dropped_actions),
        evidence_refs=tuple(_ref(text, titles) for text in diagnosis.evidence_refs),
    )


def _dropped(text: Text) -> Text:
    found = _DROPPED.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        return text
    where = found["where"]
    why = (
        message("refusal_no_runbook_allows")
        if where == "no runbook"
        else message("refusal_not_allowed_by", runbook=where)
    )
    return message("dropped_action", action=found["action"], why=why)


def _ref(text: Text, titles: dict[str, Text]) -> Text:
    found = _REF.fullmatch(text) if isinstance(text, str) else None
    if found is None or found["title"] not in titles:
        return text
    return message("evidence_ref", id=found["id"], title=titles[found["title"]])


def guidance(body: str, limit: int = 6) -> tuple[str, ...]:
    """The first steps of the runbook's remediation section (or, without one, its first list)."""
    sections = _sections(body)
    chosen = next((lines for title, lines in sections if _REMEDIATION.search(title)), None)
    candidates = [chosen] if chosen is not None else [lines for _, lines in sections]
    for lines in candidates:
        steps = _items(lines)
        if steps:
            return tuple(steps[:limit])
    return ()


def _items(lines: Sequence[str]) -> list[str]:
    """The list items among `lines`, each whole: a line that does not start an item continues the open one (an
    item wrapped over several lines), and a blank line closes it."""
    items: list[list[str]] = []
    open_item = False
    for line in lines:
        if _STEP.match(line):
            items.append([_STEP.sub("", line).strip()])
            open_item = True
        elif not line.strip():
            open_item = False
        elif open_item:
            items[-1].append(line.strip())
    return [" ".join(parts) for parts in items]


def _sections(body: str) -> list[tuple[str, list[str]]]:
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in body.splitlines():
        heading = _HEADING.match(line)
        if heading:
            sections.append((heading.group(1), []))
        else:
            sections[-1][1].append(line)
    return sections


def _one_per_name(alerts: Sequence[object]) -> list[object]:
    seen: dict[str, object] = {}
    for alert in alerts:
        seen.setdefault(getattr(alert, "name", ""), alert)
    return list(seen.values())


def _targets(alerts: Sequence[object], most: int = 10) -> list[str]:
    found: dict[str, None] = {}  # ordered and O(1) to test: a group can hold 10,000 alerts
    for alert in alerts:
        labels = getattr(alert, "labels", {})
        target = next((labels[key] for key in _TARGET_LABELS if key in labels), None)
        if target:
            found[target] = None
            if len(found) == most:
                break
    return list(found)
