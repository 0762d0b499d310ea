"""The typed hand-offs between pipeline stages.

Frozen dataclasses only; this module imports nothing from the package so that every layer can use it.
Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

AlertStatus = Literal["firing", "resolved"]
IncidentStatus = Literal["open", "resolved"]
Change = Literal["opened", "updated", "resolved", "unchanged"]
Trend = Literal["rising", "falling", "flat"]
Risk = Literal["read", "low", "high"]
Origin = Literal["model", "runbook", "chat"]


@dataclass(frozen=True)
class Message:
    """A sentence aiops says to a reader, kept as a key of the catalogs (`aiops/templates/i18n/`) and the values
    it names, so that each channel and page says it in the configured language (`aiops.i18n.say`). A value may be
    a message itself. `english` is the sentence said in English when it was made, for logs (`str(message)`) and
    for a key a later version no longer knows; `detail` is text quoted from elsewhere — what Prometheus, SSH or
    the model's endpoint answered — shown beside the sentence as it came, never translated."""

    key: str
    params: Mapping[str, str | int | float | Message] = field(default_factory=dict)
    english: str = ""
    detail: str | None = None

    def __str__(self) -> str:
        return self.english or self.key


# What a reader is told: a message, or a plain string — the words of a person, the model, a runbook or an alert,
# or a sentence stored before messages existed, shown as it is.
Text = Message | str


@dataclass(frozen=True)
class Alert:
    """One alert as Alertmanager last reported it."""

    fingerprint: str
    status: AlertStatus
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(frozen=True)
class AlertGroup:
    """One Alertmanager notification: a group of alerts sharing `group_key`."""

    group_key: str
    status: AlertStatus
    receiver: str
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    common_annotations: Mapping[str, str]
    external_url: str
    alerts: tuple[Alert, ...]
    truncated_alerts: int = 0


@dataclass(frozen=True)
class Incident:
    """What an engineer deals with: one alert group from the time it fires until all its alerts resolve."""

    id: int
    group_key: str
    status: IncidentStatus
    title: str
    severity: str
    labels: Mapping[str, str]
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class Correlation:
    """The correlate stage's answer: which incident a delivery belongs to and what it changed."""

    incident: Incident
    change: Change
    alerts: tuple[Alert, ...]
    new_firing: tuple[Alert, ...] = ()
    # An earlier run had finished correlating the delivery and this is its answer again; when False, nothing
    # after correlation (the triage) can have been stored for the delivery yet.
    again: bool = False


@dataclass(frozen=True)
class RunbookQuery:
    """A query the matched runbook names, rendered with the alert's labels; `error` says why it was refused.

    For `command`, `query` is the id of a read-only catalog action run on the alert's host."""

    name: str
    language: Literal["promql", "logql", "command"]
    query: str
    range: float
    error: str | None = None
    limit: int | None = None  # most log lines to read


@dataclass(frozen=True)
class RunbookMatch:
    """The runbook chosen for an incident, or `path=None` with the reason none was."""

    path: str | None
    commit: str | None
    reason: Text
    queries: tuple[RunbookQuery, ...] = ()
    title: str = ""
    actions: tuple[str, ...] = ()  # the catalog action ids the runbook allows
    body: str = ""  # the markdown guidance, for the model and the reader


@dataclass(frozen=True)
class SeriesSummary:
    """One time series reduced to what a reader needs: never the raw points."""

    labels: Mapping[str, str]
    points: int
    min: float
    max: float
    mean: float
    last: float
    trend: Trend
    # First and last sample in the window. For an alert's own expression, which only has samples while the
    # condition holds, `first_at` is when the threshold was crossed.
    first_at: datetime | None = None
    last_at: datetime | None = None


@dataclass(frozen=True)
class PastOutcome:
    """What ran on a past incident of the same alert on the same target, and what came of it."""

    incident_id: int
    action_id: str
    outcome: str  # recovered | not_recovered | failed | unknown | unverified
    seconds: float | None = None  # time to recovery, when it recovered
    decided_by: str | None = None
    automatic: bool = False


@dataclass(frozen=True)
class Evidence:
    """What one source found, or why it found nothing (`error`)."""

    source: str
    title: Text
    query: str
    series: tuple[SeriesSummary, ...] = ()
    omitted_series: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None
    error: Text | None = None
    lines: tuple[Text, ...] = ()  # text evidence (past incidents, logs), already reduced for a reader
    outcomes: tuple[PastOutcome, ...] = ()  # past incidents: what ran and whether it worked, newest first


@dataclass(frozen=True)
class ProposedAction:
    """An action the model proposed, already checked against what the matched runbook allows."""

    action_id: str
    reason: str = ""
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LlmUsage:
    """What the model calls for one diagnosis cost: tokens as the endpoint reported them, and USD estimated from
    the model's price — 0 for a local model (`local`), None when the model has no price (unknown, not free).

    A diagnosis stored before `local` existed reads back as `local=False` with the number it was shown with."""

    model: str
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0
    local: bool = False


@dataclass(frozen=True)
class Diagnosis:
    """The diagnose stage's answer. `source` is "offline" when no LLM was involved; `unavailable` then says why
    the model's diagnosis is missing (no key, an error, still waiting), for the reader to weigh."""

    source: str
    summary: str
    probable_cause: str | None = None
    confidence: str | None = None
    next_steps: tuple[str, ...] = ()
    impact: str | None = None
    evidence_refs: tuple[Text, ...] = ()  # titles of the evidence items the diagnosis rests on
    actions: tuple[ProposedAction, ...] = ()
    # Proposals refused because the runbook does not allow them, with why.
    dropped_actions: tuple[Text, ...] = ()
    usage: LlmUsage | None = None
    unavailable: Text | None = None
    # How the model's answer was read where it missed the schema (aiops/llm/answer.py), one line each.
    coerced: tuple[str, ...] = ()
    # A storm's members share one diagnosis: the cluster it was made for and how many incidents it then had.
    cluster_id: int | None = None
    cluster_size: int = 0


@dataclass(frozen=True)
class Proposal:
    """A concrete remediation for an incident: the exact argv and host an approval will be bound to, or — when
    `refusal` is set — why the action asked for cannot be proposed (recorded, never "fixed up")."""

    action_id: str
    host: str | None
    argv: tuple[str, ...]
    risk: Risk
    reason: Text
    refusal: Text | None = None
    origin: Origin = "runbook"
    timeout: float = 60.0
    output_cap: int = 65536
    alertname: str | None = (
        None  # the alert rule it was planned for (the per-rule budget of `auto` counts it)
    )


@dataclass(frozen=True)
class StageError:
    """A stage that failed: the pipeline records it and goes on."""

    stage: str
    message: Text


@dataclass(frozen=True)
class Triage:
    """Everything the pipeline learned about an incident for one delivery."""

    correlation: Correlation
    runbook: RunbookMatch
    evidence: tuple[Evidence, ...]
    diagnosis: Diagnosis
    proposals: tuple[Proposal, ...] = ()
    errors: tuple[StageError, ...] = field(default=())


# Severity names Alertmanager setups use, most urgent first; anything else ranks after them.
SEVERITY_RANK = {
    "critical": 0,
    "page": 0,
    "error": 1,
    "high": 1,
    "warning": 2,
    "medium": 2,
    "info": 3,
    "low": 3,
}


def severity_rank(severity: str) -> int:
    """0 for the most urgent severity; 9 for one nobody ranked."""
    return SEVERITY_RANK.get(severity.lower(), 9)
