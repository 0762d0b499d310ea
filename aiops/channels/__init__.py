"""Where incidents are announced. One folder per channel, one small protocol, one registry table."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from aiops.channels.records import ProposalRecord
from aiops.channels.routing import Routing
from aiops.models import Incident, Text, Triage

Purpose = Literal["opened", "updated", "resolved", "action"]


@dataclass(frozen=True)
class Announcement:
    """What every channel renders: the same data, whatever the platform."""

    purpose: Purpose
    incident: Incident
    triage: Triage | None
    incident_url: str
    dashboard_url: str | None = None  # the Grafana dashboard showing the incident, when grafana.url is set
    # Purpose "action": the proposal whose decision, execution or verification is reported.
    reported: ProposalRecord | None = None
    # The delivery's proposals as recorded, with their ids, states and expiry: what the card offers to approve.
    proposals: tuple[ProposalRecord, ...] = ()
    approval_links: Mapping[int, str] = field(default_factory=dict)  # proposal id → signed web approval page
    mentions: Sequence[str] = ()  # platform user ids to @mention (on-call for this severity)
    # An "updated" card re-rendered to show what became of its actions: only edited where a message exists.
    refresh: bool = False
    # Set when remediation.mode is auto: the page where approvers pause automatic remediation. Cards with
    # buttons offer a Pause button instead; robots, whose buttons can only be links, link here.
    pause_url: str | None = None
    # What the verification of the incident's fixes concluded, and whether automatic execution is held: each
    # card of the incident says it first.
    verdicts: Sequence[Text] = ()
    # A fix that did not work (`escalated`): channel name → whom to @mention besides the channel's `mentions` ...
    escalated: bool = False
    escalation: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # ... and the channels it goes to even when their `match` does not take the incident (`escalate_to`).
    escalate_to: frozenset[str] = frozenset()


class ChannelError(Exception):
    """Delivery failed; `retryable` says whether trying again later could succeed, `retry_after` when (seconds)."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class RateLimit:
    """What the platform allows one robot or app to send; the outbox stays under it."""

    per_minute: int | None = None
    per_second: int | None = None


@dataclass(frozen=True)
class Capabilities:
    """What one kind of channel can do, as its registry entry says (aiops/channels/registry.py)."""

    edits: bool  # edits a message it sent in place (the incident's card), rather than posting anew
    buttons: Literal["callbacks", "links", "none"]  # clicks come back to aiops, or buttons can only be links
    max_bytes: int | None  # the most a message body may weigh; None: no limit of the platform's
    limits: RateLimit  # what the platform lets one app or robot send


@dataclass(frozen=True)
class DigestEntry:
    incident_id: int
    title: str
    severity: str
    alertname: str
    url: str


@dataclass(frozen=True)
class Storm:
    """A storm cluster, for its card: what its members share and, once it landed, their one diagnosis."""

    id: int
    description: str
    size: int
    summary: str | None = None
    probable_cause: str | None = None


@dataclass(frozen=True)
class Digest:
    """Incidents folded into one message during a storm, instead of one message each; with `storm`, the storm
    card listing a cluster's members."""

    entries: tuple[DigestEntry, ...]
    base_url: str
    storm: Storm | None = None

    def counts(self) -> list[tuple[str, str, int]]:
        """(alert name, severity, incidents), most frequent first."""
        tally: dict[tuple[str, str], int] = {}
        for entry in self.entries:
            key = (entry.alertname, entry.severity)
            tally[key] = tally.get(key, 0) + 1
        return sorted(((name, sev, n) for (name, sev), n in tally.items()), key=lambda item: -item[2])


def digest_title(t: Callable[..., str], digest: Digest, key: str = "robot_digest_headline") -> str:
    """A digest's one-line title: the storm it lists, or how many incidents it folds."""
    if digest.storm is not None:
        return t("robot_storm_headline", id=digest.storm.id, size=digest.storm.size)
    return t(key, count=len(digest.entries))


class Channel(Protocol):
    """One configured destination. `render` turns an announcement into the platform's message body (under its size
    limit), `send` posts it and returns a handle for later edits (None when the platform cannot edit), `update`
    edits the message behind a handle. Errors are `ChannelError`s saying whether a retry could help."""

    name: str
    limits: RateLimit
    immediate: bool  # delivered inline by the pipeline (the console), not through the outbox
    # An action's result edits the incident's card (a DingTalk card's `last_action`) instead of being a message
    # of its own under it.
    results_on_card: bool

    @property
    def routing(self) -> Routing | None:
        """Which incidents the channel takes and whom it @mentions; None: every incident, nobody (the console)."""
        ...

    def render(self, announcement: Announcement) -> str: ...

    def render_digest(self, digest: Digest) -> str: ...

    async def send(self, body: str) -> str | None: ...

    async def update(self, handle: str, body: str) -> None: ...
