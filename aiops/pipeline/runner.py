"""The pipeline for one delivery, as three durable jobs: each stage timed, each failure recorded, the rest goes on.

- `triage` (one group's deliveries in order): correlate, match the runbook, gather evidence, plan from the
  runbook, store it all — and either announce at once (no model, or a storm whose diagnosis already landed) or
  leave the announcement to whichever comes first: the incident's own diagnosis, or its timer `llm.notify_within`
  later. It never waits for a model.
- `diagnose` (workers of its own, `llm.concurrency`, most severe and oldest first): the model's diagnosis of one
  delivery — or of a storm cluster, once for all its members — stored, planned, and announced or edited in.
- `announce`: the timer; it announces with what the triage found, marked as waiting for the model.

A delivery's announcement is claimed in the store, so it goes out once whichever job gets there, and a job re-run
after a crash finishes what it claimed without sending anything twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aiops.actions.approvals import EXECUTE, Approvals
from aiops.actions.builtin import BUILTINS
from aiops.actions.policy import RemediationConfig
from aiops.actions.verify import VERIFY, job_key
from aiops.channels import Announcement, Channel, Digest, DigestEntry, Purpose, Storm
from aiops.channels.records import ProposalRecord, proposal_records
from aiops.grafana import GrafanaConfig
from aiops.grafana.annotations import Annotations
from aiops.grafana.dashboards import dashboard_url
from aiops.i18n import message, unexpected
from aiops.llm.diagnoser import DiagnosisFailed
from aiops.metrics import Metrics
from aiops.models import (
    Correlation,
    Diagnosis,
    Evidence,
    Incident,
    Message,
    Proposal,
    RunbookMatch,
    StageError,
    Text,
    Triage,
    severity_rank,
)
from aiops.pipeline import storm
from aiops.pipeline.correlate import correlate
from aiops.pipeline.diagnose import Diagnoser, OfflineDiagnoser, in_messages
from aiops.pipeline.evidence import gather
from aiops.pipeline.match import RunbookMatcher
from aiops.pipeline.notify import notify, notify_storm
from aiops.pipeline.plan import Planner
from aiops.pipeline.storm import Placement, StormConfig
from aiops.sources import Source
from aiops.store import actions, chat, clusters, incidents, jobs, triages, verifications
from aiops.store.clusters import Cluster, Member
from aiops.store.jobs import Job

log = logging.getLogger("aiops.pipeline")
T = TypeVar("T")
DIAGNOSE, ANNOUNCE = "diagnose", "announce"
TRIAGED_BY = "triage"  # who claims an announcement made by the triage job itself


@dataclass(frozen=True)
class Stages:
    """The plug-ins the stages use, built once at start-up."""

    sources: Sequence[Source]
    diagnoser: Diagnoser
    offline: OfflineDiagnoser
    channels: Sequence[Channel]
    runbooks: RunbookMatcher
    planner: Planner | None = None  # None: nothing is ever proposed
    approvals: Approvals | None = None
    evidence_deadline: float = 30.0
    # How long an announcement waits for its own diagnosis; None: `run` waits for it (replay, tests).
    notify_within: float | None = None
    # Why the diagnoser is the offline one, when it is (no model configured).
    offline_reason: Text | None = None
    # Grafana: the dashboard announcements link to, and the annotations of incidents opened and resolved.
    grafana: GrafanaConfig = field(default_factory=GrafanaConfig)
    annotations: Annotations | None = None
    storm: StormConfig = field(default_factory=StormConfig)
    # Whom a fix that did not work is escalated to (`remediation.escalation`, `remediation.escalate_to`).
    remediation: RemediationConfig = field(default_factory=RemediationConfig)


@dataclass(frozen=True)
class Proposed:
    """What a proposal asked for in chat became: the proposal as recorded, or why there is none."""

    proposal: Mapping[str, Any] | None
    refusal: Text | None


@dataclass(frozen=True)
class Prepared:
    """What the stages before diagnosis found."""

    runbook: RunbookMatch
    evidence: tuple[Evidence, ...]
    errors: tuple[StageError, ...]


class Pipeline:
    def __init__(self, engine: AsyncEngine, stages: Stages, metrics: Metrics, base_url: str) -> None:
        self._engine = engine
        self.stages = stages
        self._metrics = metrics
        self._base_url = base_url
        self.wake: Callable[[str], None] = lambda kind: None  # the worker pool's, once it runs

    @property
    def _model(self) -> bool:
        return self.stages.offline_reason is None

    # -- the jobs

    async def handle(self, job: Job) -> None:
        """The `triage` job."""
        await self.triage_delivery(int(job.payload["delivery_id"]))

    async def handle_diagnose(self, job: Job) -> None:
        """The `diagnose` job: one delivery's diagnosis, or a storm cluster's."""
        if "cluster_id" in job.payload:
            await self.diagnose_cluster(int(job.payload["cluster_id"]))
        else:
            await self.diagnose_delivery(int(job.payload["delivery_id"]))

    async def handle_announce(self, job: Job) -> None:
        """The `announce` job: the timer of an announcement still waiting for its diagnosis."""
        await self.announce(int(job.payload["delivery_id"]), ANNOUNCE)

    async def run(self, delivery_id: int) -> Triage | None:
        """One delivery through every job it makes, in this task (tests, callers without workers): the triage,
        then its diagnosis raced against its announcement's timer as the workers would run them."""
        triage = await self.triage_delivery(delivery_id)
        if triage is None or not self._model or triage.diagnosis.source == "llm":
            return triage
        async with self._engine.connect() as conn:
            cluster = await clusters.of_incident(conn, triage.correlation.incident.id)
        if cluster is not None:
            await self.diagnose_cluster(cluster.id)
            return await self._stored(delivery_id) or triage
        diagnosing = asyncio.ensure_future(self.diagnose_delivery(delivery_id))
        try:
            if self.stages.notify_within is not None:
                done, _ = await asyncio.wait({diagnosing}, timeout=self.stages.notify_within)
                if not done:
                    await self.announce(delivery_id, ANNOUNCE)
            return await diagnosing or triage
        finally:
            diagnosing.cancel()  # a no-op once done; stops the model call when the caller is stopped

    # -- triage

    async def triage_delivery(self, delivery_id: int) -> Triage | None:
        """Correlate, prepare, plan and store one delivery, then announce it or schedule its announcement."""
        with self._metrics.stage_duration.labels("correlate").time():
            correlation = await correlate(self._engine, delivery_id, self.stages.annotations)
        if correlation.change == "unchanged":
            return None
        if correlation.change == "resolved":
            await self._resolve(correlation, delivery_id)
            return None
        stored = None
        if correlation.again:  # a re-run after a crash, maybe after the triage was stored
            async with self._engine.connect() as conn:
                stored = await triages.of_delivery(conn, delivery_id)
        if stored is not None:  # the triage was stored and its jobs enqueued with it
            return await self._resume(correlation, delivery_id, stored)
        prepared = await self.prepare(correlation)
        waiting = self._offline(correlation, prepared, self._waiting())
        triage = await self._plan(correlation, prepared, waiting)
        async with self._engine.begin() as conn:
            placement = await storm.place(conn, correlation, self.stages.storm)
            shared = _shared(placement.cluster)
            if shared is not None:
                triage = await self._plan(correlation, prepared, self._for_member(shared, triage.diagnosis))
            diagnosed = self._diagnosed_now(correlation, shared)
            queued = await self._record(conn, triage, delivery_id, diagnosed + _failures(triage.errors))
            if shared is not None:
                await triages.mark_diagnosed(conn, delivery_id)
            now = shared is not None or not self._model or self.stages.notify_within == 0
            diagnosing = await self._schedule(
                conn, correlation, delivery_id, placement, diagnosed=shared is not None, now=now
            )
            # Claimed with the triage: a re-run after a crash finds it claimed by the triage and announces again.
            claim = await self._claim(conn, delivery_id, TRIAGED_BY) if now else None
        self._after_commit(queued, diagnosing)
        if claim is not None:
            if claim[0] == "first":
                self._observe_announcement(correlation)
            await self._notify(correlation, triage, delivery_id, proposals=claim[1])
        if placement.formed and placement.cluster is not None:
            self._metrics.storms.inc()
            await self._storm_card(placement.cluster, "formed")
        return triage

    def _diagnosed_now(self, correlation: Correlation, shared: Diagnosis | None) -> list[tuple[str, Text]]:
        """The `diagnosed` event of a triage that is its own diagnosis: its storm's, landed already, or the
        offline one when there is no model (for the opening delivery; later ones only add to it)."""
        if shared is not None:
            self._observe_diagnosis(correlation)
            return [("diagnosed", message("event_diagnosed"))]
        if not self._model and correlation.change == "opened":
            self._observe_diagnosis(correlation)
            return [("diagnosed", message("event_diagnosed_offline"))]
        return []

    def _observe_diagnosis(self, correlation: Correlation) -> None:
        if correlation.change == "opened":
            incident = correlation.incident
            self._metrics.time_to_diagnosis.labels(incident.severity).observe(_since(incident.opened_at))

    async def _resume(self, correlation: Correlation, delivery_id: int, stored: Mapping[str, Any]) -> Triage:
        triage = _from_store(correlation, stored)
        if stored["announced_by"] in (None, TRIAGED_BY) and (not self._model or stored["diagnosed_at"]):
            await self.announce(delivery_id, TRIAGED_BY, triage)
        return triage

    def _waiting(self) -> Text:
        if not self._model:
            return self.stages.offline_reason or message("llm_none")
        return message("llm_waiting", seconds=self.stages.notify_within or 0)

    async def _schedule(
        self,
        conn: AsyncConnection,
        correlation: Correlation,
        delivery_id: int,
        placement: Placement,
        *,
        diagnosed: bool,
        now: bool,
    ) -> bool:
        """The delivery's diagnosis (its own, or its storm cluster's) and its announcement's timer; True when a
        diagnosis job was enqueued (a storm's members after the first find their cluster's queued already)."""
        priority = severity_rank(correlation.incident.severity)
        enqueued = False
        if self._model and not diagnosed:
            cluster = placement.cluster
            payload = {"delivery_id": delivery_id} if cluster is None else {"cluster_id": cluster.id}
            key = f"diagnose:delivery:{delivery_id}" if cluster is None else f"diagnose:cluster:{cluster.id}"
            enqueued = await jobs.enqueue(conn, DIAGNOSE, key, payload, priority=priority, dedup_key=key)
        if not now and self.stages.notify_within is not None:
            key = _timer(delivery_id)
            payload = {"delivery_id": delivery_id}
            await jobs.enqueue(conn, ANNOUNCE, key, payload, delay=self.stages.notify_within, dedup_key=key)
        return enqueued

    def _after_commit(self, queued: int, diagnosing: bool = False) -> None:
        """Wake who has new work: the executions' worker for actions queued, a diagnosis worker for a new job."""
        if queued and self.stages.approvals is not None:
            self.stages.approvals.wake()
        if diagnosing:
            self.wake(DIAGNOSE)

    async def _resolve(self, correlation: Correlation, delivery_id: int) -> None:
        """All alerts resolved: what still waits to be announced goes out first, then the resolution."""
        incident_id = correlation.incident.id
        async with self._engine.begin() as conn:
            if self.stages.approvals is not None:
                await self.stages.approvals.moot(conn, incident_id)
            waiting = await triages.unannounced(conn, incident_id)
            watched = [v for v in await verifications.of_incident(conn, incident_id) if v["outcome"] is None]
            for verification in watched:  # the resolution is what they watch for: decide now
                await jobs.due_now(conn, job_key(verification["id"]))
        if watched:
            self.wake(VERIFY)
        for earlier in waiting:
            await self.announce(earlier, "resolve")
        incident = correlation.incident
        self._metrics.time_to_resolve.labels(incident.severity).observe(_since(incident.opened_at))
        await self._notify(correlation, None, delivery_id)

    # -- announcement

    async def announce(self, delivery_id: int, who: str, triage: Triage | None = None) -> bool:
        """Announce the delivery as stored, unless another job has; True when this one did."""
        async with self._engine.begin() as conn:
            claim = await self._claim(conn, delivery_id, who)
        if claim is None:
            return False
        if triage is None:
            triage = await self._stored(delivery_id)
        if triage is not None:
            if claim[0] == "first":
                self._observe_announcement(triage.correlation)
            await self._notify(triage.correlation, triage, delivery_id, proposals=claim[1])
        return True

    async def _claim(
        self, conn: AsyncConnection, delivery_id: int, who: str
    ) -> tuple[triages.Claim, list[dict[str, Any]]] | None:
        """Claim the delivery's announcement for `who`: whether it is the first claim, and the proposals it shows,
        read in the same transaction; None when another job has claimed it."""
        claim = await triages.claim_announcement(conn, delivery_id, who)
        if claim is None:
            return None
        return claim, await actions.of_delivery(conn, delivery_id)

    def _observe_announcement(self, correlation: Correlation) -> None:
        """`aiops_time_to_announce_seconds`, once per incident: when the delivery that opened it is announced."""
        if correlation.change == "opened":
            incident = correlation.incident
            self._metrics.time_to_announce.labels(incident.severity).observe(_since(incident.opened_at))

    async def _stored(self, delivery_id: int) -> Triage | None:
        correlation, stored = await self._reread(delivery_id)
        return None if stored is None else _from_store(correlation, stored)

    async def _reread(self, delivery_id: int) -> tuple[Correlation, dict[str, Any] | None]:
        """A delivery's correlation (read again: correlating is idempotent) and its triage as stored."""
        correlation = await correlate(self._engine, delivery_id)
        async with self._engine.connect() as conn:
            return correlation, await triages.of_delivery(conn, delivery_id)

    # -- diagnosis

    async def diagnose_delivery(self, delivery_id: int) -> Triage | None:
        """The model's diagnosis of one delivery, landed on its incident (announced, or its card edited)."""
        correlation, stored = await self._reread(delivery_id)
        incident = correlation.incident
        async with self._engine.connect() as conn:
            cluster = await clusters.of_incident(conn, incident.id)
        if stored is None or stored["diagnosed_at"] is not None:
            return None
        if incident.status == "resolved":
            await self._skip(delivery_id, incident.id, message("event_diagnosis_skipped"))
            return None
        prepared = _prepared(correlation, stored)
        if (
            cluster is not None
        ):  # it joined a storm after this job was enqueued: the storm's diagnosis covers it
            shared = _shared(cluster)
            return None if shared is None else await self._land(correlation, prepared, delivery_id, shared)
        diagnosis, error = await self.diagnose(correlation, prepared)
        return await self._land(correlation, prepared, delivery_id, diagnosis, error)

    async def diagnose_cluster(self, cluster_id: int) -> None:
        """One diagnosis for a storm cluster, from its lead member's evidence and the storm's shape, landed on
        every member still waiting for one."""
        async with self._engine.connect() as conn:
            cluster = await clusters.get(conn, cluster_id)
            members = await clusters.members(conn, cluster_id)
        live = [member for member in members if member.status == "open"]
        if cluster is None or not live:
            return
        shared = _shared(cluster)
        if shared is None:
            # The triage that formed the cluster posted its card, unless it crashed right after: this is once.
            await self._storm_card(cluster, "formed")
            shared = await self._diagnose_storm(cluster, live[0], members)
            async with self._engine.begin() as conn:
                await clusters.record_diagnosis(conn, cluster.id, shared)
                # Read after the write: a member joining now either is listed here or sees the diagnosis.
                members = await clusters.members(conn, cluster_id)
            await self._storm_card(cluster, "diagnosed", shared)
        for member in members:
            if member.status == "open" and not member.diagnosed:
                await self._land_member(member, shared)

    async def _diagnose_storm(self, cluster: Cluster, lead: Member, members: Sequence[Member]) -> Diagnosis:
        correlation, stored = await self._reread(lead.delivery_id)
        assert stored is not None  # members are listed through their stored triages
        prepared = _prepared(correlation, stored)
        shape = storm.evidence(cluster, members)
        diagnosis, _error = await self.diagnose(
            correlation, dataclasses.replace(prepared, evidence=(shape, *prepared.evidence))
        )
        return dataclasses.replace(diagnosis, cluster_id=cluster.id, cluster_size=len(members))

    async def _land_member(self, member: Member, shared: Diagnosis) -> None:
        correlation, stored = await self._reread(member.delivery_id)
        if stored is None:
            return
        prepared = _prepared(correlation, stored)
        own = self._offline(correlation, prepared, shared.unavailable or "")
        await self._land(correlation, prepared, member.delivery_id, self._for_member(shared, own))

    def _for_member(self, shared: Diagnosis, own: Diagnosis) -> Diagnosis:
        """A member takes the cluster's diagnosis; when the model gave none, its own offline one with the reason."""
        if shared.source == "llm":
            return shared
        return dataclasses.replace(own, unavailable=shared.unavailable, cluster_id=shared.cluster_id)

    async def _land(
        self,
        correlation: Correlation,
        prepared: Prepared,
        delivery_id: int,
        diagnosis: Diagnosis,
        error: StageError | None = None,
    ) -> Triage:
        """Store a diagnosis and its plan; announce the delivery with it, or edit the announcement made."""
        triage = await self._plan(correlation, prepared, diagnosis, error)
        landed = [("diagnosed", message("event_diagnosed"))] if diagnosis.source == "llm" else []
        if landed:
            self._observe_diagnosis(correlation)
        async with self._engine.begin() as conn:
            queued = await self._record(
                conn, triage, delivery_id, landed + _failures([error] if error else [])
            )
            await triages.mark_diagnosed(conn, delivery_id)
            first = await triages.claim_announcement(conn, delivery_id, DIAGNOSE)
            if first:
                await jobs.cancel(conn, _timer(delivery_id))
            now = await incidents.get(conn, correlation.incident.id)
            proposals = await actions.of_delivery(conn, delivery_id)
        self._after_commit(queued)
        # A card that already says resolved is not reopened: the late diagnosis is on the incident's page.
        resolved = now is not None and now.status == "resolved"
        if first:
            if first == "first":
                self._observe_announcement(correlation)
            await self._notify(correlation, triage, delivery_id, proposals=proposals)
        elif not resolved:
            self._metrics.diagnoses.labels("late").inc()
            await self._notify(correlation, triage, delivery_id, "-diagnosis", "updated", proposals=proposals)
        return triage

    async def _skip(self, delivery_id: int, incident_id: int, reason: Message) -> None:
        async with self._engine.begin() as conn:
            await triages.mark_diagnosed(conn, delivery_id)
            await incidents.add_event(conn, incident_id, "diagnosis_skipped", reason)

    async def _storm_card(self, cluster: Cluster, stage: str, diagnosis: Diagnosis | None = None) -> None:
        """The storm card: posted when the cluster forms, and again with the diagnosis when it lands."""
        async with self._engine.connect() as conn:
            members = await clusters.members(conn, cluster.id)
            lead = await incidents.get(conn, cluster.lead_incident_id)
        if lead is None:
            return
        url = f"{self._base_url}/incidents/"
        entries = tuple(
            DigestEntry(
                m.incident_id, m.title, m.severity, m.labels.get("alertname", ""), f"{url}{m.incident_id}"
            )
            for m in members
        )
        found = diagnosis if diagnosis is not None and diagnosis.source == "llm" else None
        summary = Storm(
            cluster.id,
            cluster.description,
            len(members),
            found.summary if found else None,
            found.probable_cause if found else None,
        )
        digest = Digest(entries, self._base_url, summary)
        key = f"storm-{cluster.id}-{stage}"
        await notify_storm(self._engine, self.stages.channels, digest, lead, key, self._metrics)

    async def triage(self, correlation: Correlation) -> Triage:
        """match → evidence → diagnose → plan; no store writes, so `aiops replay` can use it as it is."""
        prepared = await self.prepare(correlation)
        return await self._plan(correlation, prepared, *await self.diagnose(correlation, prepared))

    async def prepare(self, correlation: Correlation) -> Prepared:
        errors: list[StageError] = []
        no_runbook = RunbookMatch(None, None, message("runbook_match_failed"))
        runbook = await self._stage(
            "match", errors, no_runbook, lambda: self.stages.runbooks.match(correlation)
        )
        with self._metrics.stage_duration.labels("evidence").time():
            evidence, evidence_errors = await gather(
                self.stages.sources, correlation, runbook, self.stages.evidence_deadline
            )
        errors.extend(evidence_errors)
        for _ in evidence_errors:
            self._metrics.stage_failures.labels("evidence").inc()
        return Prepared(runbook, evidence, tuple(errors))

    async def diagnose(
        self, correlation: Correlation, prepared: Prepared
    ) -> tuple[Diagnosis, StageError | None]:
        """The diagnoser's answer, or the offline diagnosis saying why there is none; never raises."""
        if self.stages.offline_reason is not None:
            self._metrics.diagnoses.labels("offline").inc()
            return self._offline(correlation, prepared, self.stages.offline_reason), None
        started = time.perf_counter()
        try:
            diagnosis = await self.stages.diagnoser.diagnose(correlation, prepared.runbook, prepared.evidence)
        except Exception as error:
            log.warning("stage diagnose failed: %s", error)
            self._metrics.stage_failures.labels("diagnose").inc()
            self._metrics.diagnoses.labels("offline").inc()
            reason = error.reason if isinstance(error, DiagnosisFailed) else unexpected(error)
            offline = self._offline(correlation, prepared, reason)
            usage = getattr(error, "usage", None)
            return dataclasses.replace(offline, usage=usage), StageError("diagnose", reason)
        finally:
            self._metrics.stage_duration.labels("diagnose").observe(time.perf_counter() - started)
        self._metrics.diagnoses.labels(diagnosis.source).inc()
        return in_messages(diagnosis, prepared.evidence), None

    def _offline(self, correlation: Correlation, prepared: Prepared, reason: Text) -> Diagnosis:
        diagnosis = self.stages.offline.now(correlation, prepared.evidence, prepared.runbook)
        return dataclasses.replace(diagnosis, unavailable=reason)

    async def _plan(
        self,
        correlation: Correlation,
        prepared: Prepared,
        diagnosis: Diagnosis,
        error: StageError | None = None,
    ) -> Triage:
        errors = [*prepared.errors, *([error] if error else [])]
        nothing: tuple[Proposal, ...] = ()
        planner = self.stages.planner
        proposals = (
            await self._stage(
                "plan",
                errors,
                nothing,
                _now(planner.plan, correlation, prepared.runbook, diagnosis, prepared.evidence),
            )
            if planner is not None
            else nothing
        )
        return Triage(correlation, prepared.runbook, prepared.evidence, diagnosis, proposals, tuple(errors))

    async def _record(
        self, conn: AsyncConnection, triage: Triage, delivery_id: int, events: Sequence[tuple[str, Text]]
    ) -> int:
        """Store the triage, its events and its proposals in the caller's transaction; proposals queued."""
        incident_id = triage.correlation.incident.id
        await incidents.save_triage(conn, delivery_id, triage)
        for kind, said in events:
            await incidents.add_event(conn, incident_id, kind, said)
        approvals = self.stages.approvals
        return (
            0
            if approvals is None
            else await approvals.record(conn, incident_id, delivery_id, triage.proposals)
        )

    async def propose(
        self, incident_id: int, action_id: str, params: Mapping[str, str], asked_by: str
    ) -> Proposed:
        """A proposal asked for in chat, planned like the triage's (the runbook allows it, the catalog renders it
        with the alert's labels, the inventory resolves its host) — aiops's own silence and acknowledgement are
        allowed on any incident — recorded on the incident's card in the state the policy gives it, and the
        card edited to offer it. Asked again, the same proposal is found, not made twice."""
        planner, approvals = self.stages.planner, self.stages.approvals
        async with self._engine.connect() as conn:
            incident = await incidents.get(conn, incident_id)
            triage = await incidents.latest_triage(conn, incident_id)
            delivery_id = await chat.latest_delivery(conn, incident_id)
        if planner is None or approvals is None or incident is None or triage is None or delivery_id is None:
            return Proposed(None, message("chat_nothing_to_propose", id=incident_id))
        correlation = triage.correlation
        alert = (correlation.new_firing or correlation.alerts or (None,))[0]
        if alert is None:
            return Proposed(None, message("chat_nothing_to_propose", id=incident_id))
        runbook = dataclasses.replace(triage.runbook, actions=(*triage.runbook.actions, *BUILTINS))
        reason = message("proposal_by_chat", who=asked_by)
        planned = dataclasses.replace(
            planner.one(alert, runbook, action_id, reason, params, "chat"), alertname=alert.name
        )
        if planned.refusal is not None:
            return Proposed(None, planned.refusal)
        hashed = actions.argv_hash(planned.host, planned.argv)
        async with self._engine.begin() as conn:
            await approvals.record(conn, incident_id, delivery_id, [planned])
            rows = await actions.of_delivery(conn, delivery_id)
        row = next(r for r in rows if r["action_id"] == action_id and r["argv_hash"] == hashed)
        self.wake(EXECUTE)
        await self._refresh_card(incident, ProposalRecord.from_row(row), f"chat-proposal-{row['id']}")
        return Proposed(row, None)

    async def report_action(self, incident_id: int, row: dict[str, Any]) -> None:
        """Announce what became of an approved proposal (its execution's result, or why it did not run), or — with
        its "verification" — whether it fixed the incident. A fix that failed or did not recover the incident is
        escalated: the message and the card @mention the escalation list of the incident's severity. `row` is
        the proposal as stored, with its "execution" and, when verified, its "verification"."""
        async with self._engine.connect() as conn:
            incident = await incidents.get(conn, incident_id)
        if incident is None:
            return
        reported = ProposalRecord.from_row(row)
        verification = reported.verification
        if verification is not None:
            key = f"verification-{verification.id}-{verification.outcome}"
            escalate = verification.outcome == "not_recovered"
        else:
            key = f"proposal-{reported.id}-{reported.state}"
            escalate = reported.state in ("failed", "unknown")
        announcement = await self._announcement("action", incident, None, escalate, reported=reported)
        with self._metrics.stage_duration.labels("notify").time():
            await notify(self._engine, self.stages.channels, announcement, key, self._metrics)
            await self._refresh_card(incident, reported, key, escalate)

    async def _refresh_card(
        self, incident: Incident, reported: ProposalRecord, key: str, escalate: bool = False
    ) -> None:
        """Edit the incident's card so that it shows what became of `reported` next to the diagnosis."""
        card = await self._card(incident, reported.delivery_id, escalate)
        if card is not None:
            await notify(self._engine, self.stages.channels, card, f"{key}-card", self._metrics)

    async def show(self, card: Announcement, key: str) -> None:
        """Edit an incident's card to `card` (read after a decision made in chat), once per `key`."""
        await notify(self._engine, self.stages.channels, card, key, self._metrics)

    async def card(self, incident_id: int, delivery_id: int) -> Announcement | None:
        """The incident's card as it now stands, showing the proposals of one of its deliveries: what a click
        on that card is answered with (None when the incident or its triage is gone)."""
        async with self._engine.connect() as conn:
            incident = await incidents.get(conn, incident_id)
        return None if incident is None else await self._card(incident, delivery_id)

    async def _card(
        self, incident: Incident, delivery_id: int, escalate: bool = False
    ) -> Announcement | None:
        async with self._engine.connect() as conn:
            triage = await incidents.latest_triage(conn, incident.id)
            proposals = await verifications.attach(conn, await actions.of_delivery(conn, delivery_id))
        if triage is None:
            return None
        links = await self.stages.approvals.links(self._base_url, proposals) if self.stages.approvals else {}
        purpose: Purpose = "resolved" if incident.status == "resolved" else "updated"
        return await self._announcement(
            purpose,
            incident,
            triage,
            escalate,
            proposals=proposal_records(proposals),
            approval_links=links,
            refresh=True,
        )

    async def _announcement(
        self,
        purpose: Purpose,
        incident: Incident,
        triage: Triage | None,
        escalate: bool = False,
        verdicts: tuple[Text, ...] | None = None,
        **details: Any,
    ) -> Announcement:
        """An announcement of `incident`, with what every one carries: its page, its dashboard, and what the
        verification of its fixes concluded (read here unless the caller read it already)."""
        url = f"{self._base_url}/incidents/{incident.id}"
        dashboard = dashboard_url(self.stages.grafana, incident)
        approvals = self.stages.approvals
        pause = approvals.pause_url(self._base_url) if approvals is not None else None
        if verdicts is None:
            async with self._engine.connect() as conn:
                verdicts = await _verdicts(conn, incident.id)
        if escalate:
            remediation = self.stages.remediation
            details["escalated"] = True
            details["escalation"] = remediation.escalation.get(incident.severity, {})
            details["escalate_to"] = frozenset(remediation.escalate_to)
        return Announcement(
            purpose, incident, triage, url, dashboard, pause_url=pause, verdicts=verdicts, **details
        )

    async def _stage(
        self, name: str, errors: list[StageError], fallback: T, run: Callable[[], Awaitable[T]]
    ) -> T:
        started = time.perf_counter()
        try:
            return await run()
        except Exception as error:
            log.warning("stage %s failed: %s", name, error)
            self._metrics.stage_failures.labels(name).inc()
            errors.append(StageError(name, unexpected(error)))
            return fallback
        finally:
            self._metrics.stage_duration.labels(name).observe(time.perf_counter() - started)

    async def _notify(
        self,
        correlation: Correlation,
        triage: Triage | None,
        delivery_id: int,
        suffix: str = "",
        purpose: Purpose | None = None,
        proposals: list[dict[str, Any]] | None = None,
    ) -> None:
        """`proposals`: the delivery's, when the caller read them in its own transaction."""
        if purpose is None:
            purpose = (
                "resolved" if triage is None else "opened" if correlation.change == "opened" else "updated"
            )
        incident = correlation.incident
        if triage is None:
            proposals = []
        async with self._engine.connect() as conn:  # one read for all the card shows
            if proposals is None:
                proposals = await actions.of_delivery(conn, delivery_id)
            proposals = await verifications.attach(conn, proposals)
            verdicts = await _verdicts(conn, incident.id)
        links = await self.stages.approvals.links(self._base_url, proposals) if self.stages.approvals else {}
        announcement = await self._announcement(
            purpose,
            incident,
            triage,
            verdicts=verdicts,
            proposals=proposal_records(proposals),
            approval_links=links,
        )
        with self._metrics.stage_duration.labels("notify").time():
            await notify(
                self._engine,
                self.stages.channels,
                announcement,
                f"delivery-{delivery_id}{suffix}",
                self._metrics,
            )


def _since(moment: datetime) -> float:
    return max(0.0, time.time() - moment.timestamp())


async def _verdicts(conn: AsyncConnection, incident_id: int) -> tuple[Text, ...]:
    """What the incident's cards say first: each decided verification of its fixes, and — where it has actions the
    policy could run — a tripped breaker."""
    said: list[Text] = [
        item["detail"] for item in await verifications.of_incident(conn, incident_id) if item["outcome"]
    ]
    breaker = await verifications.breaker(conn)
    if breaker is not None and await verifications.has_actions(conn, incident_id):
        said.append(message("breaker_holding", reason=breaker["reason"] or ""))
    return tuple(said)


def _timer(delivery_id: int) -> str:
    """The dedup key of a delivery's announcement timer."""
    return f"announce:{delivery_id}"


def _shared(cluster: Cluster | None) -> Diagnosis | None:
    """The diagnosis a storm cluster's members share, once it landed."""
    if cluster is None or cluster.diagnosis is None:
        return None
    return _adapter(Diagnosis).validate_python(cluster.diagnosis)  # type: ignore[no-any-return]


def _from_store(correlation: Correlation, stored: Mapping[str, Any]) -> Triage:
    return dataclasses.replace(
        incidents.stored_triage(stored, correlation.incident, ()), correlation=correlation
    )


def _prepared(correlation: Correlation, stored: Mapping[str, Any]) -> Prepared:
    triage = _from_store(correlation, stored)
    return Prepared(triage.runbook, triage.evidence, triage.errors)


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def _failures(errors: Sequence[StageError]) -> list[tuple[str, Text]]:
    return [
        ("stage_failed", message("event_stage_failed", stage=error.stage, error=error.message))
        for error in errors
    ]


def _now(function: Callable[..., T], *args: object) -> Callable[[], Awaitable[T]]:
    async def call() -> T:
        return function(*args)

    return call
