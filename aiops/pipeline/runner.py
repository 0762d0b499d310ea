"""The pipeline for one delivery: each stage timed, each failure recorded on the incident, the rest goes on."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.channels import Announcement, Channel, Purpose
from aiops.metrics import Metrics
from aiops.models import Correlation, Diagnosis, Proposal, RunbookMatch, StageError, Triage
from aiops.pipeline.correlate import correlate
from aiops.pipeline.diagnose import Diagnoser, OfflineDiagnoser
from aiops.pipeline.evidence import gather
from aiops.pipeline.match import RunbookMatcher
from aiops.pipeline.notify import notify
from aiops.pipeline.plan import plan_actions
from aiops.sources import Source
from aiops.store import incidents
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
    evidence_deadline: float = 30.0


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
        with self._metrics.stage_duration.labels("correlate").time():
            correlation = await correlate(self._engine, delivery_id)
        if correlation.change == "unchanged":
            return None
        if correlation.change == "resolved":
            await self._notify(correlation, None, delivery_id)
            return None
        triage = await self.triage(correlation)
        async with self._engine.begin() as conn:
            await incidents.save_triage(conn, delivery_id, triage)
            for error in triage.errors:
                await incidents.add_event(
                    conn, correlation.incident.id, "stage_failed", f"{error.stage}: {error.message}"
                )
        await self._notify(correlation, triage, delivery_id)
        return triage

    async def triage(self, correlation: Correlation) -> Triage:
        """match → evidence → diagnose → plan; no store writes, so `aiops replay` can use it as it is."""
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
        offline = self.stages.offline.now(correlation, evidence)
        diagnosis: Diagnosis = await self._stage(
            "diagnose",
            errors,
            offline,
            lambda: self.stages.diagnoser.diagnose(correlation, runbook, evidence),
        )
        nothing: tuple[Proposal, ...] = ()
        proposals = await self._stage(
            "plan", errors, nothing, _now(plan_actions, correlation, runbook, diagnosis)
        )
        return Triage(correlation, runbook, evidence, diagnosis, proposals, tuple(errors))

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

    async def _notify(self, correlation: Correlation, triage: Triage | None, delivery_id: int) -> None:
        purpose: Purpose = (
            "resolved" if triage is None else "opened" if correlation.change == "opened" else "updated"
        )
        incident = correlation.incident
        url = f"{self._base_url}/incidents/{incident.id}"
        announcement = Announcement(purpose, incident, triage, url)
        with self._metrics.stage_duration.labels("notify").time():
            await notify(
                self._engine, self.stages.channels, announcement, f"delivery-{delivery_id}", self._metrics
            )


def _now(function: Callable[..., T], *args: object) -> Callable[[], Awaitable[T]]:
    async def call() -> T:
        return function(*args)

    return call
