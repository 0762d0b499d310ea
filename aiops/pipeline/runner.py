"""The pipeline for one delivery: each stage timed, each failure recorded on the incident, the rest goes on."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.actions.approvals import Approvals
from aiops.channels import Announcement, Channel, Purpose
from aiops.grafana import GrafanaConfig
from aiops.grafana.annotations import Annotations
from aiops.grafana.dashboards import dashboard_url
from aiops.metrics import Metrics
from aiops.models import (
    Correlation,
    Diagnosis,
    Evidence,
    Incident,
    Proposal,
    RunbookMatch,
    StageError,
    Triage,
)
from aiops.pipeline.correlate import correlate
from aiops.pipeline.diagnose import Diagnoser, OfflineDiagnoser
from aiops.pipeline.evidence import gather
from aiops.pipeline.match import RunbookMatcher
from aiops.pipeline.notify import notify
from aiops.pipeline.plan import Planner
from aiops.sources import Source
from aiops.store import actions, incidents
from aiops.store.jobs import Job

log = logging.getLogger("aiops.pipeline")
T = TypeVar("T")


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
    # How long the first notification waits for the diagnoser; None waits for it (replay, tests).
    notify_within: float | None = None
    # Why the diagnoser is the offline one, when it is (no model configured).
    offline_reason: str | None = None
    # Grafana: the dashboard announcements link to, and the annotations of incidents opened and resolved.
    grafana: GrafanaConfig = field(default_factory=GrafanaConfig)
    annotations: Annotations | None = None


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

    async def handle(self, job: Job) -> None:
        """The `triage` job: one delivery through every stage."""
        await self.run(int(job.payload["delivery_id"]))

    async def run(self, delivery_id: int) -> Triage | None:
        """Triage and announce one delivery. A diagnosis slower than `notify_within` does not hold the
        announcement back: it goes out with the evidence, and is updated when the diagnosis arrives."""
        with self._metrics.stage_duration.labels("correlate").time():
            correlation = await correlate(self._engine, delivery_id, self.stages.annotations)
        if correlation.change == "unchanged":
            return None
        if correlation.change == "resolved":
            if self.stages.approvals is not None:
                async with self._engine.begin() as conn:
                    await self.stages.approvals.moot(conn, correlation.incident.id)
            await self._notify(correlation, None, delivery_id)
            return None
        prepared = await self.prepare(correlation)
        diagnosing = asyncio.ensure_future(self.diagnose(correlation, prepared))
        try:
            return await self._announce(correlation, prepared, diagnosing, delivery_id)
        finally:
            diagnosing.cancel()  # a no-op once done; stops the model call when the job itself is stopped

    async def _announce(
        self,
        correlation: Correlation,
        prepared: Prepared,
        diagnosing: asyncio.Future[tuple[Diagnosis, StageError | None]],
        delivery_id: int,
    ) -> Triage:
        try:
            outcome = await asyncio.wait_for(asyncio.shield(diagnosing), self.stages.notify_within)
        except TimeoutError:
            waited = f"the model has not answered within {self.stages.notify_within:g}s; this will be updated"
            early = self._offline(correlation, prepared, waited)
            triage = await self._plan(correlation, prepared, early)
            await self._save(triage, delivery_id, _failures(triage.errors))
            await self._notify(correlation, triage, delivery_id)
            outcome = await diagnosing
            diagnosis, error = outcome
            triage = await self._plan(correlation, prepared, diagnosis, error)
            if error is not None or diagnosis.source == "offline":
                await self._save(triage, delivery_id, _failures([error] if error else []))
                return triage  # the first announcement, already sent, stays the word on this delivery
            self._metrics.diagnoses.labels("late").inc()
            await self._save(triage, delivery_id, [("diagnosed", "the model's diagnosis arrived")])
            await self._notify(correlation, triage, delivery_id, suffix="-diagnosis", purpose="updated")
            return triage
        triage = await self._plan(correlation, prepared, *outcome)
        await self._save(triage, delivery_id, _failures(triage.errors))
        await self._notify(correlation, triage, delivery_id)
        return triage

    async def triage(self, correlation: Correlation) -> Triage:
        """match → evidence → diagnose → plan; no store writes, so `aiops replay` can use it as it is."""
        prepared = await self.prepare(correlation)
        return await self._plan(correlation, prepared, *await self.diagnose(correlation, prepared))

    async def prepare(self, correlation: Correlation) -> Prepared:
        errors: list[StageError] = []
        no_runbook = RunbookMatch(None, None, "no runbook: matching failed")
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
            offline = self._offline(correlation, prepared, str(error))
            usage = getattr(error, "usage", None)
            return dataclasses.replace(offline, usage=usage), StageError("diagnose", str(error))
        finally:
            self._metrics.stage_duration.labels("diagnose").observe(time.perf_counter() - started)
        self._metrics.diagnoses.labels(diagnosis.source).inc()
        return diagnosis, None

    def _offline(self, correlation: Correlation, prepared: Prepared, reason: str) -> Diagnosis:
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
                "plan", errors, nothing, _now(planner.plan, correlation, prepared.runbook, diagnosis)
            )
            if planner is not None
            else nothing
        )
        return Triage(correlation, prepared.runbook, prepared.evidence, diagnosis, proposals, tuple(errors))

    async def _save(self, triage: Triage, delivery_id: int, events: Sequence[tuple[str, str]]) -> None:
        incident_id = triage.correlation.incident.id
        approvals = self.stages.approvals
        queued = 0
        async with self._engine.begin() as conn:
            await incidents.save_triage(conn, delivery_id, triage)
            for kind, message in events:
                await incidents.add_event(conn, incident_id, kind, message)
            if approvals is not None:
                queued = await approvals.record(conn, incident_id, delivery_id, triage.proposals)
        if queued and approvals is not None:
            approvals.wake()

    async def report_action(self, incident_id: int, action: dict[str, Any]) -> None:
        """Announce what became of an approved action (its execution's result, or why it did not run)."""
        async with self._engine.connect() as conn:
            incident = await incidents.get(conn, incident_id)
        if incident is None:
            return
        announcement = self._announcement("action", incident, None, action=action)
        key = f"proposal-{action['id']}-{action['state']}"
        with self._metrics.stage_duration.labels("notify").time():
            await notify(self._engine, self.stages.channels, announcement, key, self._metrics)
            await self._refresh_card(incident, action, key)

    async def _refresh_card(self, incident: Incident, action: dict[str, Any], key: str) -> None:
        """Edit the incident's card so that it shows the action's outcome next to the diagnosis."""
        async with self._engine.connect() as conn:
            triage = await incidents.latest_triage(conn, incident.id)
            proposals = [p for p in await actions.of_delivery(conn, action["delivery_id"])]
        if triage is None:
            return
        links = await self.stages.approvals.links(self._base_url, proposals) if self.stages.approvals else {}
        card = self._announcement(
            "updated", incident, triage, proposals=proposals, approval_links=links, refresh=True
        )
        await notify(self._engine, self.stages.channels, card, f"{key}-card", self._metrics)

    def _announcement(
        self, purpose: Purpose, incident: Incident, triage: Triage | None, **details: Any
    ) -> Announcement:
        """An announcement of `incident`, with the links every one carries: its page and its dashboard."""
        url = f"{self._base_url}/incidents/{incident.id}"
        dashboard = dashboard_url(self.stages.grafana, incident)
        return Announcement(purpose, incident, triage, url, dashboard, **details)

    async def _stage(
        self, name: str, errors: list[StageError], fallback: T, run: Callable[[], Awaitable[T]]
    ) -> T:
        started = time.perf_counter()
        try:
            return await run()
        except Exception as error:
            log.warning("stage %s failed: %s", name, error)
            self._metrics.stage_failures.labels(name).inc()
            errors.append(StageError(name, f"{type(error).__name__}: {error}"))
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
    ) -> None:
        if purpose is None:
            purpose = (
                "resolved" if triage is None else "opened" if correlation.change == "opened" else "updated"
            )
        incident = correlation.incident
        async with self._engine.connect() as conn:
            proposals = await actions.of_delivery(conn, delivery_id) if triage is not None else []
        links = await self.stages.approvals.links(self._base_url, proposals) if self.stages.approvals else {}
        announcement = self._announcement(
            purpose, incident, triage, proposals=proposals, approval_links=links
        )
        with self._metrics.stage_duration.labels("notify").time():
            await notify(
                self._engine,
                self.stages.channels,
                announcement,
                f"delivery-{delivery_id}{suffix}",
                self._metrics,
            )


def _failures(errors: Sequence[StageError]) -> list[tuple[str, str]]:
    return [("stage_failed", f"{error.stage}: {error.message}") for error in errors]


def _now(function: Callable[..., T], *args: object) -> Callable[[], Awaitable[T]]:
    async def call() -> T:
        return function(*args)

    return call
