"""Execute an approved proposal, at most once.

The `execute` job records the execution (state `running`) and commits before anything is contacted. Finding such a
row already there means an earlier attempt was interrupted — aiops crashed, or was stopped — while the action ran:
its outcome is then `unknown`, reported, and the action is not run again; a person decides what to do next.
Limits come before the record: at most `remediation.max_per_hour` executions per action and host, and none while
another one runs on the same host (the job waits and tries again). An execution's end is annotated in Grafana
(when configured) by a job enqueued in the transaction that records it, and so is the verification of a command
that succeeded (aiops/actions/verify.py). An automatic execution that failed counts towards the circuit breaker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aiops.actions.builtin import ACKNOWLEDGE, SILENCE, seconds
from aiops.actions.policy import RemediationConfig
from aiops.actions.silence import SilenceError, create_silence
from aiops.actions.verify import VerifyOf, check_breaker, schedule
from aiops.grafana.annotations import Annotations
from aiops.i18n import message
from aiops.logtext import redact
from aiops.metrics import Metrics
from aiops.models import Message, Text
from aiops.queue import Deferred
from aiops.ssh import CommandResult, ExecutionError, Executor, said
from aiops.store import actions, incidents, verifications
from aiops.store.jobs import Job

log = logging.getLogger("aiops.actions")

Report = Callable[[int, dict[str, Any]], Awaitable[None]]  # (incident id, proposal with its execution)


class HostBusy(Deferred):
    """Another execution runs on the host; the job runs again a little later (not counted as a failure)."""

    def __init__(self, reason: str) -> None:
        super().__init__(5.0, reason)


@dataclass(frozen=True)
class Outcome:
    state: str  # succeeded | failed | dry_run
    exit_status: int | None = None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    error: Message | None = None


class Executions:
    def __init__(
        self,
        engine: AsyncEngine,
        executor: Executor,
        config: RemediationConfig,
        http: httpx.AsyncClient,
        alertmanager_url: str | None,
        base_url: str,
        report: Report,
        metrics: Metrics,
        annotations: Annotations | None = None,
        verify_of: VerifyOf = lambda action_id: None,
    ) -> None:
        self._verify_of = verify_of
        self._metrics = metrics
        self._annotations = annotations
        self._engine = engine
        self._executor = executor
        self._config = config
        self._http = http
        self._alertmanager = alertmanager_url
        self._base_url = base_url
        self._report = report

    async def handle(self, job: Job) -> None:
        """The `execute` job."""
        proposal_id = int(job.payload["proposal_id"])
        async with self._engine.begin() as conn:
            item, execution_id = await self._begin(conn, proposal_id)
        if item is None:
            return
        if execution_id is None:
            await self._report(item["incident_id"], await self._reload(proposal_id))
            return
        outcome = await self._run(item)
        async with self._engine.begin() as conn:
            await self._finish(conn, item, execution_id, outcome)
        self._metrics.executions.labels(outcome.state).inc()
        await self._report(item["incident_id"], await self._reload(proposal_id))

    async def _begin(
        self, conn: AsyncConnection, proposal_id: int
    ) -> tuple[dict[str, Any] | None, int | None]:
        """(proposal, execution id) to run; (proposal, None) when there is only something to report."""
        item = await actions.proposal(conn, proposal_id, lock=True)
        if item is None:
            return None, None
        earlier = await actions.execution_of(conn, proposal_id)
        if earlier is not None:
            return (
                (await self._interrupted(conn, item, earlier), None)
                if earlier["state"] == "running"
                else (None, None)
            )
        if item["state"] != "approved":
            return None, None
        refusal = await self._limits(conn, item)
        if refusal is not None:
            await actions.set_state(conn, proposal_id, "refused", expected="approved", detail=refusal)
            await _audit(conn, item, "refused", refusal)
            return item, None
        execution_id = await actions.start_execution(conn, item)
        await actions.set_state(conn, proposal_id, "running", expected="approved")
        started = message("audit_execution_started", command=" ".join(item["argv"]), host=str(item["host"]))
        await _audit(conn, item, "execution_started", started)
        return item, execution_id

    async def _interrupted(
        self, conn: AsyncConnection, item: dict[str, Any], earlier: dict[str, Any]
    ) -> dict[str, Any]:
        reason = message("execution_interrupted")
        await actions.finish_execution(conn, earlier["id"], "unknown", error=reason)
        await actions.set_state(conn, item["id"], "unknown", expected="running")
        await _audit(conn, item, "unknown", reason)
        self._metrics.executions.labels("unknown").inc()
        event = message("event_execution", action=item["action_id"], host=str(item["host"]), outcome=reason)
        await incidents.add_event(conn, item["incident_id"], "execution_unknown", event)
        if verifications.automatic(item):
            await check_breaker(conn, self._config, item["incident_id"])
        log.error("execution of proposal %d was interrupted; outcome unknown, not retried", item["id"])
        return item

    async def _limits(self, conn: AsyncConnection, item: dict[str, Any]) -> Message | None:
        if await actions.running_on(conn, item["host"], item["id"]):
            raise HostBusy(f"another action runs on {item['host']}; {item['action_id']} waits for it")
        done = await actions.recent_runs(conn, item["action_id"], item["host"], time.time() - 3600)
        if done >= self._config.max_per_hour:
            limit = self._config.max_per_hour
            return message(
                "refusal_rate_limit", action=item["action_id"], host=item["host"], count=done, limit=limit
            )
        return None

    async def _run(self, item: dict[str, Any]) -> Outcome:
        if self._config.dry_run:
            return Outcome("dry_run", stdout="remediation.dry_run: rendered and recorded, not run")
        if item["action_id"] == SILENCE:
            return await self._silence(item)
        if item["action_id"] == ACKNOWLEDGE:
            return Outcome("succeeded", 0, stdout=f"acknowledged by {item['decided_by']}")
        try:
            result = await self._executor.run(
                item["host"], item["argv"], timeout=item["timeout"], output_cap=item["output_cap"]
            )
        except ExecutionError as error:
            return Outcome("failed", error=said(error))
        return _outcome(result)

    async def _silence(self, item: dict[str, Any]) -> Outcome:
        if not self._alertmanager:
            return Outcome("failed", error=message("silence_no_alertmanager"))
        async with self._engine.connect() as conn:
            incident = await incidents.get(conn, item["incident_id"])
        labels = dict(incident.labels) if incident else {}
        comment = f"aiops incident #{item['incident_id']}: {self._base_url}/incidents/{item['incident_id']}"
        try:
            silence_id = await create_silence(
                self._http,
                self._alertmanager,
                labels,
                seconds=seconds(item["argv"][1]),
                created_by=str(item["decided_by"]),
                comment=comment,
            )
        except SilenceError as error:
            return Outcome("failed", error=message("silence_failed", detail=error))
        return Outcome("succeeded", 0, stdout=f"silence {silence_id} for {item['argv'][1]}")

    async def _finish(
        self, conn: AsyncConnection, item: dict[str, Any], execution_id: int, outcome: Outcome
    ) -> None:
        await actions.finish_execution(
            conn,
            execution_id,
            outcome.state,
            exit_status=outcome.exit_status,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            truncated=outcome.truncated,
            error=outcome.error,
        )
        await actions.set_state(conn, item["id"], outcome.state, expected="running")
        summary = outcome.error or message("command_exit_status", status=str(outcome.exit_status))
        kind = "executed" if outcome.state in ("succeeded", "dry_run") else "execution_failed"
        await _audit(conn, item, kind, summary)
        event = message("event_execution", action=item["action_id"], host=str(item["host"]), outcome=summary)
        await incidents.add_event(conn, item["incident_id"], kind, event)
        if self._annotations is not None:
            await self._annotations.record(
                conn, item["incident_id"], "executed", {**item, "state": outcome.state}
            )
        verify = self._verify_of(item["action_id"])
        if outcome.state == "succeeded" and verify is not None:
            await schedule(conn, execution_id, item, verify)
        elif outcome.state == "failed" and verifications.automatic(item):
            await check_breaker(conn, self._config, item["incident_id"])

    async def _reload(self, proposal_id: int) -> dict[str, Any]:
        async with self._engine.connect() as conn:
            item = await actions.proposal(conn, proposal_id)
            assert item is not None
            item["execution"] = await actions.execution_of(conn, proposal_id)
        return item


def _outcome(result: CommandResult) -> Outcome:
    error = None
    if result.timed_out:
        error = message("execution_deadline", seconds=round(result.duration))
    elif result.exit_status is None:
        error = message("execution_stopped")
    state = "succeeded" if result.exit_status == 0 and error is None else "failed"
    return Outcome(
        state, result.exit_status, redact(result.stdout), redact(result.stderr), result.truncated, error
    )


async def _audit(conn: AsyncConnection, item: dict[str, Any], kind: str, detail: Text) -> None:
    await actions.audit(
        conn,
        kind,
        detail,
        incident_id=item["incident_id"],
        proposal_id=item["id"],
        actor=item["decided_by"],
        channel=item["decided_via"],
        hashed=item["argv_hash"],
    )
