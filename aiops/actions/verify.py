"""Verify: after an execution, watch whether the fix worked, and decide once.

The `verify` job is enqueued in the transaction that records the execution's end. Each run looks once — the
incident resolved (Alertmanager's resolved notification reached the pipeline), the incident's alerts no longer
firing in Prometheus's `ALERTS`, or the action's `verify.query` returning a series — and, while neither shows and
the window is open, defers itself (`Deferred`): the watch is a row in the store, so a restart resumes it. At the
window's end the outcome is `not_recovered` (with what the metric did meanwhile) or, when Prometheus could not be
asked, `unknown`. The decision is a conditional UPDATE, so it is made once; what announces it is keyed on the
verification, so a re-run after a crash announces nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aiops.actions.catalog import Verify
from aiops.actions.policy import RemediationConfig
from aiops.grafana.annotations import Annotations
from aiops.i18n import message
from aiops.metrics import Metrics
from aiops.models import Message, Text
from aiops.queue import Deferred
from aiops.runbooks.render import RenderError, go_quote_body, regex_literal, render
from aiops.sources.prometheus import PrometheusError, PrometheusSource, expression_of
from aiops.store import actions, incidents, jobs, verifications
from aiops.store.jobs import Job
from aiops.units import seconds_said as seconds

log = logging.getLogger("aiops.actions.verify")
VERIFY = "verify"
VerifyOf = Callable[[str], Verify | None]  # action id → how its success shows; None: not verified (built-ins)
Report = Callable[[int, dict[str, Any]], Awaitable[None]]  # (incident id, proposal with its verification)


@dataclass(frozen=True)
class Look:
    """What one look found: recovered or not, and if Prometheus could not be asked, why."""

    recovered: bool
    unreachable: Message | None = None
    firing: int = 0  # the incident's alerts still firing in ALERTS
    at: float | None = None  # when it recovered, when known (Alertmanager's resolution); otherwise now


async def schedule(conn: AsyncConnection, execution_id: int, item: dict[str, Any], verify: Verify) -> int:
    """Record the verification of an execution that just ended, and its job, in the caller's transaction."""
    verification_id = await verifications.start(
        conn, execution_id, item, automatic=verifications.automatic(item), window=verify.window
    )
    key = job_key(verification_id)
    await jobs.enqueue(conn, VERIFY, key, {"verification_id": verification_id}, dedup_key=key)
    watching = message("event_verifying", action=item["action_id"], seconds=round(verify.window))
    await incidents.add_event(conn, item["incident_id"], "verifying", watching)
    return verification_id


def job_key(verification_id: int) -> str:
    """The verification's job: its serial and dedup key."""
    return f"verify:{verification_id}"


class Verifier:
    def __init__(
        self,
        engine: AsyncEngine,
        prometheus: PrometheusSource | None,
        config: RemediationConfig,
        verify_of: VerifyOf,
        report: Report,
        metrics: Metrics,
        annotations: Annotations | None = None,
    ) -> None:
        self._engine = engine
        self._prometheus = prometheus
        self._config = config
        self._verify_of = verify_of
        self._report = report
        self._metrics = metrics
        self._annotations = annotations

    async def handle(self, job: Job) -> None:
        """The `verify` job: look once; defer while the window is open and nothing shows; decide at its end."""
        verification_id = int(job.payload["verification_id"])
        async with self._engine.connect() as conn:
            found = await verifications.get(conn, verification_id)
            item = await actions.proposal(conn, found["proposal_id"]) if found else None
        if found is None or item is None:
            return
        if found["outcome"] is None:
            verify = self._verify_of(found["action_id"]) or Verify()
            look = await self.look(found, verify)
            left = found["deadline"].timestamp() - time.time()
            if not look.recovered and left > 0:
                raise Deferred(min(self._config.verify_every, left), "the fix is still being verified")
            await self._decide(found, item, verify, look)
        await self._announce(verification_id)

    async def look(self, found: Mapping[str, Any], verify: Verify) -> Look:
        """Whether the incident recovered, as far as Alertmanager and Prometheus show now."""
        async with self._engine.connect() as conn:
            incident = await incidents.get(conn, found["incident_id"])
            alerts = await _firing_alerts(conn, found["incident_id"])
        resolved = incident is not None and incident.status == "resolved"
        if resolved and verify.query is None:
            assert incident is not None
            return Look(True, at=incident.resolved_at.timestamp() if incident.resolved_at else None)
        if self._prometheus is None:  # only Alertmanager's resolution can tell; a query cannot be asked
            return Look(False, message("prometheus_no_url") if verify.query else None)
        try:
            if verify.query is not None:
                return Look(await self._holds(verify.query, alerts))
            firing = await self._still_firing(alerts)
        except PrometheusError as error:
            return Look(False, error.reason)
        return Look(not firing, firing=firing)

    async def _holds(self, query: str, alerts: Sequence[Mapping[str, Any]]) -> bool:
        labels = alerts[0]["labels"] if alerts else {}
        try:
            rendered = render(query, labels, "promql", annotations=alerts[0]["annotations"] if alerts else {})
        except RenderError as error:
            raise PrometheusError(message("query_refused", detail=error)) from None
        assert self._prometheus is not None
        return bool(await self._prometheus.instant(rendered))

    async def _still_firing(self, alerts: Sequence[Mapping[str, Any]]) -> int:
        """How many of `alerts` ALERTS still shows firing. A series of ALERTS carries the rule's labels; the alert
        Alertmanager sent has those and the external labels, so a series is an alert's when its labels are a part
        of the alert's."""
        if not alerts:
            return 0
        assert self._prometheus is not None
        names = sorted({str(alert["name"]) for alert in alerts})
        selector = "|".join(go_quote_body(regex_literal(name)) for name in names)
        series = await self._prometheus.instant(f'ALERTS{{alertname=~"{selector}", alertstate="firing"}}')
        return sum(1 for alert in alerts if any(_part_of(labels, alert["labels"]) for labels, _ in series))

    async def _decide(
        self, found: Mapping[str, Any], item: Mapping[str, Any], verify: Verify, look: Look
    ) -> None:
        started, finished = await self._ran(found["execution_id"])
        names = _names(found, item)
        if look.recovered and look.at is not None and look.at < started:
            # Alertmanager resolved it before the fix ran: it recovered, but not after the fix.
            after, outcome = None, "recovered"
            said = message("verify_resolved_before", **names)
        elif look.recovered:
            after = max(0.0, (look.at or time.time()) - finished)
            outcome, said = "recovered", _recovered(found, names, after)
        elif look.unreachable is not None:
            after, outcome = None, "unknown"
            said = message("verify_unknown", **names, reason=look.unreachable)
        else:
            after, outcome = None, "not_recovered"
            observed = await self._observed(found, verify, finished)
            said = message(
                "verify_not_recovered", **names, window=_duration(verify.window), observed=observed
            )
        async with self._engine.begin() as conn:
            if not await verifications.decide(conn, found["id"], outcome, said, recovered_after=after):
                return  # another worker decided first
            await self._record(conn, found, item, outcome, said)
        log.info("verification %d of %s: %s", found["id"], found["action_id"], outcome)
        self._metrics.verifications.labels(outcome).inc()
        if after is not None:
            async with self._engine.connect() as conn:
                incident = await incidents.get(conn, found["incident_id"])
            how = "auto" if found["automatic"] else "approved"
            self._metrics.observe_recovery(incident.severity if incident else "", how, after)

    async def _record(
        self,
        conn: AsyncConnection,
        found: Mapping[str, Any],
        item: Mapping[str, Any],
        outcome: str,
        said: Text,
    ) -> None:
        """The decision's trail: the incident's timeline, the audit, Grafana, and the breaker's count."""
        await incidents.add_event(conn, found["incident_id"], f"verified_{outcome}", said)
        await actions.audit(
            conn,
            f"verified_{outcome}",
            said,
            incident_id=found["incident_id"],
            proposal_id=found["proposal_id"],
            actor=item["decided_by"],
            channel=item["decided_via"],
            hashed=item["argv_hash"],
        )
        if self._annotations is not None:
            await self._annotations.record(
                conn, found["incident_id"], "verified", {**item, "state": outcome, "said": said}
            )
        if found["automatic"] and outcome != "recovered":
            await check_breaker(conn, self._config, found["incident_id"])

    async def _announce(self, verification_id: int) -> None:
        async with self._engine.connect() as conn:
            found = await verifications.get(conn, verification_id)
            item = await actions.proposal(conn, found["proposal_id"]) if found else None
            if item is not None:
                item["execution"] = await actions.execution_of(conn, item["id"])
        if found is None or item is None:
            return
        await self._report(found["incident_id"], {**item, "verification": found})

    async def _ran(self, execution_id: int) -> tuple[float, float]:
        """When the execution started and ended (epoch seconds)."""
        async with self._engine.connect() as conn:
            row = await actions.execution_by_id(conn, execution_id)
        now = time.time()
        started, finished = (row["started_at"], row["finished_at"]) if row else (None, None)
        return (started.timestamp() if started else now, finished.timestamp() if finished else now)

    async def _observed(self, found: Mapping[str, Any], verify: Verify, since: float) -> Text:
        """What the metric did in the window: the verify query's, or the alert's own expression's series."""
        async with self._engine.connect() as conn:
            alerts = await _firing_alerts(conn, found["incident_id"])
        expression = _expression(verify, alerts)
        if self._prometheus is None or expression is None:
            return message("verify_observed_nothing")
        start, end = datetime.fromtimestamp(since, UTC), datetime.now(UTC)
        try:
            series = await self._prometheus.query_range(expression, start, end)
        except PrometheusError as error:
            return error.reason
        if not series:
            return message("verify_observed_no_series", query=expression)
        top = max(series, key=lambda summary: summary.last)
        numbers = {"min": f"{top.min:g}", "max": f"{top.max:g}", "last": f"{top.last:g}"}
        return message(
            "verify_observed_series", query=expression, trend=message(f"trend_{top.trend}"), **numbers
        )


async def check_breaker(conn: AsyncConnection, config: RemediationConfig, incident_id: int) -> bool:
    """Trip the breaker when the bad share of recent automatic executions reached the threshold; True if it
    tripped now (it is then in the audit trail, and the incident's card says so)."""
    breaker = config.breaker
    recent = await verifications.recent_automatic(conn, breaker.last)
    bad = sum(recent)
    if bad < breaker.trips_at:
        return False
    reason = message("breaker_tripped", bad=bad, last=breaker.last)
    tripped = await verifications.trip(conn, reason, incident_id)
    if tripped:
        log.warning("circuit breaker tripped: %s", reason)
    return tripped


def _recovered(found: Mapping[str, Any], names: Mapping[str, str], after: float) -> Message:
    key = "verify_recovered_auto" if found["automatic"] else "verify_recovered_approved"
    return message(key, **names, seconds=seconds(after))


def _names(found: Mapping[str, Any], item: Mapping[str, Any]) -> dict[str, str]:
    return {"action": str(found["action_id"]), "host": str(found["host"]), "who": str(item["decided_by"])}


def _duration(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"


def _expression(verify: Verify, alerts: Sequence[Mapping[str, Any]]) -> str | None:
    if verify.query is not None:
        try:
            labels = alerts[0]["labels"] if alerts else {}
            return render(verify.query, labels, "promql")
        except RenderError:
            return None
    return expression_of(alerts[0].get("generator_url")) if alerts else None


def _part_of(series: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    own = ("__name__", "alertstate")  # what ALERTS adds to the rule's labels
    return all(labels.get(name) == value for name, value in series.items() if name not in own)


async def _firing_alerts(conn: AsyncConnection, incident_id: int) -> list[dict[str, Any]]:
    """The incident's alerts that were firing (the latest state the store has), or all when none is."""
    alerts = await incidents.alerts_of(conn, incident_id)
    firing = [alert for alert in alerts if alert["status"] == "firing"]
    return firing or alerts
