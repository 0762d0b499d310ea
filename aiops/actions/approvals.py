"""Approvals: proposals recorded under the policy, decided once by an allow-listed person, or made moot.

Every channel (CLI, web page, and the chat buttons) ends in `Approvals.decide`, so the rules hold everywhere: the
approver is allow-listed for that channel, the proposal is still pending and unexpired, the decision is bound to the
exact argv and host the person saw, and a second decision changes nothing. An approval enqueues the execution; the
queue runs one execution per host at a time (its serial key is the host).

Under `remediation.mode: auto`, a `low` proposal is approved by the policy — unless the circuit breaker is tripped,
or the same action already ran on the incident (a fix that did not work is never retried by itself): it then
waits for a person like a `high` one, and says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aiops.actions import guardrails
from aiops.actions.links import approval_url, make_token, signing_key
from aiops.actions.policy import RemediationConfig
from aiops.i18n import message
from aiops.metrics import Metrics
from aiops.models import Message, Proposal, Text
from aiops.store import actions, incidents, jobs, verifications

EXECUTE = "execute"
Outcome = Literal["approved", "rejected", "already", "refused", "expired", "moot", "not_found"]
_DONE = ("approved", "running", "succeeded", "failed", "unknown", "dry_run")


@dataclass(frozen=True)
class Actor:
    """Who decides, and through which channel: `feishu` open_id, `dingtalk` staff id, `web` user, `cli` user."""

    channel: str
    identity: str


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    message: Message
    proposal: dict[str, Any] | None = None

    @property
    def took_effect(self) -> bool:
        return self.outcome in ("approved", "rejected")


class Approvals:
    def __init__(
        self,
        engine: AsyncEngine,
        config: RemediationConfig,
        metrics: Metrics | None = None,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._config = config
        self._metrics = metrics or Metrics()
        self.wake = wake
        self._key: bytes | None = None  # the signing key: once stored, it never changes

    @property
    def config(self) -> RemediationConfig:
        return self._config

    def pause_url(self, base_url: str) -> str | None:
        """Where approvers pause automatic remediation, when there is any (`remediation.mode: auto`)."""
        return f"{base_url}/remediation" if self._config.mode == "auto" else None

    async def record(
        self, conn: AsyncConnection, incident_id: int, delivery_id: int, proposals: Sequence[Proposal]
    ) -> int:
        """Store a triage's proposals in the state the policy gives them; returns how many executions it queued."""
        queued = 0
        for proposal in proposals:
            state, expires = self._initial(proposal)
            held = await self._held(conn, incident_id, proposal) if state == "approved" else None
            if held is not None:
                state, expires = "pending", time.time() + self._config.approval_ttl
            proposal_id = await actions.record_proposal(
                conn, incident_id, delivery_id, proposal, state, expires, held
            )
            if proposal_id is None:
                continue  # this delivery proposed it already (a re-run after a crash)
            self._metrics.proposals.labels(state).inc()
            hashed = actions.argv_hash(proposal.host, proposal.argv)
            detail = proposal.refusal or message(
                "audit_proposed",
                action=proposal.action_id,
                host=str(proposal.host),
                command=" ".join(proposal.argv),
            )
            kind = "refused" if state == "refused" else "proposed"
            await actions.audit(
                conn,
                kind,
                detail,
                incident_id=incident_id,
                proposal_id=proposal_id,
                actor=proposal.origin,
                channel="pipeline",
                hashed=hashed,
            )
            if held is not None:
                await actions.audit(
                    conn,
                    "held",
                    held,
                    incident_id=incident_id,
                    proposal_id=proposal_id,
                    actor="policy",
                    channel="auto",
                    hashed=hashed,
                )
            if state == "approved":
                await self._observe_decision(conn, incident_id, 0.0, "approved", "auto")
                await actions.audit(
                    conn,
                    "approved",
                    message("audit_auto_approved"),
                    incident_id=incident_id,
                    proposal_id=proposal_id,
                    actor="policy",
                    channel="auto",
                    hashed=hashed,
                )
                await jobs.enqueue(conn, EXECUTE, f"host:{proposal.host}", {"proposal_id": proposal_id})
                queued += 1
        return queued

    def _initial(self, proposal: Proposal) -> tuple[str, float | None]:
        if proposal.refusal is not None:
            return "refused", None
        mode = self._config.mode
        if mode == "suggest":
            return "suggested", None
        if mode == "auto" and proposal.risk == "low":
            return "approved", None
        return "pending", time.time() + self._config.approval_ttl

    async def _held(self, conn: AsyncConnection, incident_id: int, proposal: Proposal) -> Message | None:
        """Why a proposal the policy would run by itself waits for a person instead; None when it runs: the
        breaker is tripped, the action already ran on this incident, remediation is paused or a budget is spent."""
        if await verifications.breaker(conn) is not None:
            return message("proposal_held_breaker", action=proposal.action_id)
        if await verifications.tried_on(conn, incident_id, proposal.action_id):
            return message("proposal_held_tried", action=proposal.action_id)
        return await guardrails.hold(conn, self._config, incident_id, proposal)

    async def decide(
        self, proposal_id: int, approve: bool, actor: Actor, expected_hash: str | None = None
    ) -> Decision:
        """Approve or reject; idempotent, and refused with the reason when it may not take effect."""
        if not self._config.approvers.allows(actor.channel, actor.identity):
            return await self._refuse(
                proposal_id,
                actor,
                message("decision_not_approver", who=actor.identity, channel=actor.channel),
            )
        async with self._engine.begin() as conn:
            item = await actions.proposal(conn, proposal_id, lock=True)
            if item is None:
                return Decision("not_found", message("decision_not_found", id=proposal_id))
            decision = await self._apply(conn, item, approve, actor, expected_hash)
        self._metrics.approvals.labels(decision.outcome, actor.channel).inc()
        if decision.took_effect and decision.proposal is not None:
            waited = time.time() - decision.proposal["created_at"].timestamp()
            async with self._engine.connect() as conn:
                await self._observe_decision(
                    conn, decision.proposal["incident_id"], waited, decision.outcome, actor.channel
                )
        if decision.outcome == "approved":
            self.wake()
        return decision

    async def _observe_decision(
        self, conn: AsyncConnection, incident_id: int, waited: float, outcome: str, how: str
    ) -> None:
        """`aiops_time_to_decision_seconds`: from the proposal to its decision (0 when the policy decided)."""
        incident = await incidents.get(conn, incident_id)
        severity = incident.severity if incident is not None else "none"
        self._metrics.time_to_decision.labels(severity, how, outcome).observe(max(0.0, waited))

    async def _apply(
        self, conn: AsyncConnection, item: dict[str, Any], approve: bool, actor: Actor, expected: str | None
    ) -> Decision:
        if expected is not None and expected != item["argv_hash"]:
            return Decision("refused", message("decision_changed"), item)
        if item["state"] != "pending":
            return _settled(item, approve)
        if item["expires_at"] is not None and item["expires_at"].timestamp() <= time.time():
            await actions.set_state(conn, item["id"], "expired", expected="pending")
            await _audit(conn, item, "expired", message("audit_expired"), actor)
            return Decision("expired", message("decision_expired"), item)
        state: Outcome = "approved" if approve else "rejected"
        await actions.set_state(
            conn, item["id"], state, expected="pending", actor=actor.identity, channel=actor.channel
        )
        by = {"who": actor.identity, "channel": actor.channel}
        await _audit(conn, item, state, message(f"audit_{state}", **by), actor)
        if approve:
            await jobs.enqueue(conn, EXECUTE, f"host:{item['host']}", {"proposal_id": item["id"]})
        said = message(f"decision_{state}", action=item["action_id"], host=str(item["host"]))
        return Decision(state, said, {**item, "state": state})

    async def _refuse(self, proposal_id: int, actor: Actor, reason: Message) -> Decision:
        async with self._engine.begin() as conn:
            item = await actions.proposal(conn, proposal_id)
            if item is None:
                return Decision("not_found", message("decision_not_found", id=proposal_id))
            await _audit(conn, item, "approval_refused", reason, actor)
        return Decision("refused", reason, item)

    async def links(self, base_url: str, proposals: Sequence[dict[str, Any]]) -> dict[int, str]:
        """The signed web approval page of each proposal waiting for an approval (for channels whose buttons can
        only be links)."""
        waiting = [
            item for item in proposals if item["state"] == "pending" and item["expires_at"] is not None
        ]
        if not waiting:
            return {}
        if self._key is None:
            self._key = await signing_key(self._engine, self._config)
        key = self._key
        return {
            item["id"]: approval_url(
                base_url, make_token(key, item["id"], item["argv_hash"], item["expires_at"].timestamp())
            )
            for item in waiting
        }

    async def moot(self, conn: AsyncConnection, incident_id: int) -> None:
        """The incident resolved: what still waits for an approval will not get one."""
        for item in await actions.pending(conn, incident_id):
            if await actions.set_state(conn, item["id"], "moot", expected="pending"):
                await _audit(conn, item, "moot", message("audit_moot"), None)

    async def expire(self) -> None:
        async with self._engine.begin() as conn:
            await actions.expire_due(conn)


def _settled(item: dict[str, Any], approve: bool) -> Decision:
    """The answer to a decision on a proposal that is no longer pending: what happened to it, and by whom."""
    state, by = item["state"], {"who": str(item["decided_by"]), "channel": str(item["decided_via"])}
    if state in _DONE and approve:
        return Decision("already", message("decision_already_approved", **by), item)
    if state == "rejected" and not approve:
        return Decision("already", message("decision_already_rejected", **by), item)
    if state == "rejected":
        return Decision("refused", message("decision_rejection_final", **by), item)
    if state == "moot":
        return Decision("moot", message("decision_moot"), item)
    if state == "expired":
        return Decision("expired", message("decision_expired"), item)
    return Decision("refused", message("decision_settled", state=message(f"approval_state_{state}")), item)


async def _audit(
    conn: AsyncConnection, item: dict[str, Any], kind: str, detail: Text, actor: Actor | None
) -> None:
    await actions.audit(
        conn,
        kind,
        detail,
        incident_id=item["incident_id"],
        proposal_id=item["id"],
        actor=actor.identity if actor else None,
        channel=actor.channel if actor else None,
        hashed=item["argv_hash"],
    )
