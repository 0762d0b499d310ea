"""Guardrails of `remediation.mode: auto`: the pause switch and the budgets.

A `low` proposal that `auto` would run at once waits for an approval instead — like a `high` one, never dropped —
when automatic remediation is paused, or when a budget is spent: automatic runs per alert rule and for the whole
service in the last hour (`remediation.budgets.per_rule_per_hour`, `per_hour`), distinct hosts touched
automatically within one storm cluster (`hosts_per_storm`). What held it is recorded on the proposal and shown on
its card and page. `remediation.max_per_hour` (per action and host) is older and different: it refuses an approved
execution, whoever approved it (aiops/actions/execute.py).

Pausing and resuming go through `switch`, whatever the channel (CLI, API, web page, card button), so the rules
hold everywhere: the person is an approver of that channel (the CLI may always pause: stopping automation must
never wait for an allow-list), and every change is in the audit trail with who and through what.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aiops.actions.policy import RemediationConfig
from aiops.i18n import message
from aiops.models import Message, Proposal
from aiops.store import actions, guardrails, verifications
from aiops.store.guardrails import Switch

HOUR = 3600.0
Change = Literal["paused", "resumed", "already", "refused"]


@dataclass(frozen=True)
class Switched:
    """What a pause or resume did, the switch as it now stands, and what to tell the person."""

    outcome: Change
    message: Message
    switch: Switch


async def hold(
    conn: AsyncConnection, config: RemediationConfig, incident_id: int, proposal: Proposal
) -> Message | None:
    """Why a proposal `auto` would run at once must wait for an approval; None when it may run. Called in the
    transaction that records it, which then holds the guardrails' lock (the budget's last run goes to one)."""
    await guardrails.lock(conn)
    state = await guardrails.switch(conn)
    if state.paused:
        return paused_message(state)
    budgets, since = config.budgets, time.time() - HOUR
    spent = await guardrails.automatic_since(conn, since)
    if spent >= budgets.per_hour:
        return message("held_budget_service", count=spent, limit=budgets.per_hour)
    if proposal.alertname is not None:
        spent = await guardrails.automatic_since(conn, since, proposal.alertname)
        if spent >= budgets.per_rule_per_hour:
            limit = budgets.per_rule_per_hour
            return message("held_budget_rule", rule=proposal.alertname, count=spent, limit=limit)
    return await _storm_hosts(conn, config, incident_id, proposal)


async def _storm_hosts(
    conn: AsyncConnection, config: RemediationConfig, incident_id: int, proposal: Proposal
) -> Message | None:
    cluster_id = await guardrails.cluster_of(conn, incident_id)
    if cluster_id is None or proposal.host is None:
        return None
    touched = await guardrails.automatic_hosts(conn, cluster_id)
    limit = config.budgets.hosts_per_storm
    if proposal.host in touched or len(touched) < limit:
        return None
    return message("held_budget_storm", cluster=cluster_id, count=len(touched), limit=limit)


def paused_message(state: Switch) -> Message:
    return message("held_paused", who=str(state.actor), channel=str(state.channel), since=when(state))


async def status(engine: AsyncEngine) -> Switch:
    async with engine.connect() as conn:
        return await guardrails.switch(conn)


async def breaker(engine: AsyncEngine) -> dict[str, Any] | None:
    """The circuit breaker while it holds automatic execution (when it tripped, why), else None."""
    async with engine.connect() as conn:
        return await verifications.breaker(conn)


async def switch(
    engine: AsyncEngine, config: RemediationConfig, pause: bool, channel: str, identity: str
) -> Switched:
    """Pause (`pause`) or resume automatic remediation as `identity` through `channel`; audited once per change."""
    verb = "pause" if pause else "resume"
    if not _may(config, pause, channel, identity):
        refusal = message("switch_not_approver", who=identity, channel=channel, verb=verb)
        async with engine.begin() as conn:
            await actions.audit(conn, "switch_refused", refusal, actor=identity, channel=channel)
            return Switched("refused", refusal, await guardrails.switch(conn))
    async with engine.begin() as conn:
        changed = await guardrails.set_switch(conn, pause, identity, channel)
        # Resuming also closes the circuit breaker, whether or not anyone had paused: one command gives
        # automatic remediation back.
        reset = not pause and await verifications.breaker_reset(conn, identity, channel)
        now = await guardrails.switch(conn)
        if not changed and not reset:
            return Switched("already", _already(now), now)
        kind = "remediation_paused" if pause else "remediation_resumed"
        if changed:
            await actions.audit(
                conn,
                kind,
                message(f"audit_{kind}", who=identity, channel=channel),
                actor=identity,
                channel=channel,
            )
    outcome: Change = "paused" if pause else "resumed"
    return Switched(outcome, message(f"switch_{outcome}", who=identity, channel=channel), now)


def _may(config: RemediationConfig, pause: bool, channel: str, identity: str) -> bool:
    if pause and channel == "cli":
        return True
    return config.approvers.allows(channel, identity)


def _already(state: Switch) -> Message:
    if state.paused:
        return message(
            "switch_already_paused", who=str(state.actor), channel=str(state.channel), since=when(state)
        )
    return message("switch_not_paused")


def when(state: Switch) -> str:
    return "—" if state.since is None else f"{state.since:%Y-%m-%d %H:%M:%S} UTC"
