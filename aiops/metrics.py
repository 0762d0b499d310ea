"""The service's Prometheus metrics, in a registry of its own built at start-up (nothing at import time)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from aiops.store.jobs import QueueStats

# From seconds to an hour: a fix verified within its window (5 minutes by default), or a slow recovery.
_RECOVERY_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1800, 3600)
_STAGE_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# The fault process: seconds to minutes to a first card or a diagnosis, up to hours for a person's decision or
# a resolution.
_PROCESS_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.webhook_requests = Counter(
            "aiops_webhook_requests",
            "Alertmanager webhook requests by HTTP status code",
            ["code"],
            registry=r,
        )
        self.alerts_received = Counter(
            "aiops_alerts_received",
            "Alerts in accepted webhook deliveries, by status",
            ["status"],
            registry=r,
        )
        self.deliveries_duplicate = Counter(
            "aiops_deliveries_duplicate", "Redeliveries and repeat notifications recognised", registry=r
        )
        self.stage_duration = Histogram(
            "aiops_stage_duration_seconds",
            "Time spent in each pipeline stage",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.stage_failures = Counter(
            "aiops_stage_failures",
            "Pipeline stages that failed and were recorded on the incident",
            ["stage"],
            registry=r,
        )
        self.queue_jobs = Gauge("aiops_queue_jobs", "Jobs in the queue by state", ["state"], registry=r)
        self.queue_oldest_age = Gauge(
            "aiops_queue_oldest_age_seconds", "Age of the oldest unfinished job", registry=r
        )
        self.approvals_pending = Gauge(
            "aiops_approvals_pending", "Remediation proposals waiting for an approval", registry=r
        )
        self.approvals_oldest_pending_age = Gauge(
            "aiops_approvals_oldest_pending_age_seconds",
            "How long the oldest proposal still waiting for an approval has waited",
            registry=r,
        )
        self.incidents = Gauge("aiops_incidents", "Incidents by status", ["status"], registry=r)
        self.notifications = Counter(
            "aiops_notifications", "Notifications by channel and outcome", ["channel", "outcome"], registry=r
        )
        self.chat_messages = Counter(
            "aiops_chat_messages",
            "Chat messages to aiops by channel and what became of them (ignored, duplicate, refused, queued)",
            ["channel", "outcome"],
            registry=r,
        )
        self.annotations = Counter(
            "aiops_annotations",
            "Grafana annotations by outcome (written, already_written, retry, refused, dropped)",
            ["outcome"],
            registry=r,
        )
        self.llm_calls = Counter(
            "aiops_llm_calls", "Model calls by outcome (ok, error, invalid answer)", ["outcome"], registry=r
        )
        self.llm_tokens = Counter(
            "aiops_llm_tokens",
            "Tokens the model endpoint reported, by kind (prompt, completion)",
            ["kind"],
            registry=r,
        )
        self.llm_cost = Counter(
            "aiops_llm_cost_usd",
            "Estimated model cost in US dollars, from the model's price (0 for a local model)",
            registry=r,
        )
        self.llm_unpriced_tokens = Counter(
            "aiops_llm_unpriced_tokens",
            "Tokens of a model with no price (not local, not in llm.prices): their cost is not in aiops_llm_cost_usd",
            ["kind"],
            registry=r,
        )
        self.llm_call_duration = Histogram(
            "aiops_llm_call_duration_seconds",
            "Time per model call, retries included",
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.llm_throttled = Histogram(
            "aiops_llm_throttled_pause_seconds",
            "Pauses of every model call after the endpoint said too many requests (HTTP 429, MiniMax 1002)",
            buckets=(0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.storms = Counter(
            "aiops_storms", "Storm clusters formed: incidents diagnosed once, together", registry=r
        )
        self.proposals = Counter(
            "aiops_proposals",
            "Remediation proposals by the state they were recorded in",
            ["state"],
            registry=r,
        )
        self.approvals = Counter(
            "aiops_approvals", "Approval decisions by outcome and channel", ["outcome", "channel"], registry=r
        )
        self.executions = Counter(
            "aiops_executions",
            "Executions by outcome (succeeded, failed, unknown, dry_run)",
            ["outcome"],
            registry=r,
        )
        self.diagnoses = Counter(
            "aiops_diagnoses",
            "Diagnoses by source: llm, offline (no model, or it failed), late (the model answered after the first"
            " notification)",
            ["source"],
            registry=r,
        )
        self.time_to_announce = Histogram(
            "aiops_time_to_announce_seconds",
            "From an incident opening to its first announcement being handed to the channels",
            ["severity"],
            buckets=_PROCESS_BUCKETS,
            registry=r,
        )
        self.time_to_diagnosis = Histogram(
            "aiops_time_to_diagnosis_seconds",
            "From an incident opening to its first diagnosis (the model's, or the offline one without a model)",
            ["severity"],
            buckets=_PROCESS_BUCKETS,
            registry=r,
        )
        self.time_to_decision = Histogram(
            "aiops_time_to_decision_seconds",
            "From a proposal to its decision; `decided_via` is the channel, or auto for the policy (0 s)",
            ["severity", "decided_via", "outcome"],
            buckets=_PROCESS_BUCKETS,
            registry=r,
        )
        self.time_to_resolve = Histogram(
            "aiops_time_to_resolve_seconds",
            "From an incident opening to all its alerts resolving (mean: MTTR)",
            ["severity"],
            buckets=_PROCESS_BUCKETS,
            registry=r,
        )
        self.remediation_paused = Gauge(
            "aiops_remediation_paused",
            "1 while automatic remediation is paused (aiops remediation pause)",
            registry=r,
        )
        self.verifications = Counter(
            "aiops_verifications",
            "Verifications of executions by outcome (recovered, not_recovered, unknown)",
            ["outcome"],
            registry=r,
        )
        self.time_to_recovery = Histogram(
            "aiops_time_to_recovery_seconds",
            "From an execution's end until its incident recovered, by severity and how the fix was decided"
            " (auto, approved)",
            ["severity", "decided"],
            buckets=_RECOVERY_BUCKETS,
            registry=r,
        )
        self.breaker_tripped = Gauge(
            "aiops_remediation_breaker_tripped",
            "1 while the circuit breaker holds automatic execution (too many automatic fixes failed or did not"
            " recover): low-risk proposals wait for an approval until it is reset",
            registry=r,
        )

        # A labelled series appears when first incremented, and `increase()` cannot see that first step; the
        # outcomes alerting rules watch start at zero instead.
        for outcome in ("ok", "error", "invalid"):
            self.llm_calls.labels(outcome)
        for kind in ("prompt", "completion"):
            self.llm_unpriced_tokens.labels(kind)
        for outcome in ("succeeded", "failed", "unknown", "dry_run"):
            self.executions.labels(outcome)
        for outcome in ("recovered", "not_recovered", "unknown"):
            self.verifications.labels(outcome)

    def watch_channels(self, names: Iterable[str]) -> None:
        """Start the outcomes of each configured channel at zero, for the same reason."""
        for name in names:
            for outcome in ("sent", "failed"):
                self.notifications.labels(name, outcome)

    def observe_store(
        self,
        queue: QueueStats,
        incidents: dict[str, int],
        approvals: tuple[int, float] = (0, 0.0),
        paused: bool = False,
    ) -> None:
        """Refresh the gauges that mirror the store, just before a scrape; `approvals` is (pending, oldest age)."""
        self.queue_jobs.labels("pending").set(queue.pending)
        self.queue_jobs.labels("running").set(queue.running)
        self.queue_jobs.labels("failed").set(queue.failed)
        self.queue_oldest_age.set(queue.oldest_age)
        for status in ("open", "resolved"):
            self.incidents.labels(status).set(incidents.get(status, 0))
        self.approvals_pending.set(approvals[0])
        self.approvals_oldest_pending_age.set(approvals[1])
        self.remediation_paused.set(1 if paused else 0)

    def observe_recovery(self, severity: str, decided_how: str, seconds: float) -> None:
        """A fix verified: `seconds` from the execution's end until the incident recovered; `decided_how` is
        "auto" (the policy ran it) or "approved" (a person did)."""
        self.time_to_recovery.labels(severity, decided_how).observe(seconds)

    def observe_breaker(self, tripped: bool) -> None:
        self.breaker_tripped.set(1 if tripped else 0)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
