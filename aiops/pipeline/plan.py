"""Plan actions: concrete proposals from what the diagnosis proposed (or, without a model, what the runbook lists).

Each proposal is rendered from the reviewed catalog with the alert's labels and resolved to a host of the
inventory. Anything that cannot be — an action the runbook does not allow, a value failing its pattern, a host not
in the inventory — becomes a refused proposal carrying the reason, never a "fixed up" one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from aiops.actions.builtin import BUILTINS, default_params
from aiops.actions.catalog import Action, ActionRefused, render_command
from aiops.actions.live import LiveCatalog
from aiops.actions.policy import RemediationConfig
from aiops.i18n import message
from aiops.inventory import HostNotFound, Inventory
from aiops.models import (
    Alert,
    Correlation,
    Diagnosis,
    Evidence,
    Message,
    Origin,
    Proposal,
    RunbookMatch,
    Text,
)
from aiops.sources.history import rank


class Planner:
    def __init__(self, catalog: LiveCatalog, inventory: Inventory, config: RemediationConfig) -> None:
        self._catalog = catalog
        self._inventory = inventory
        self._config = config

    def action(self, action_id: str) -> Action | None:
        return BUILTINS.get(action_id) or self._catalog.get(action_id)

    def plan(
        self,
        correlation: Correlation,
        runbook: RunbookMatch,
        diagnosis: Diagnosis,
        evidence: Sequence[Evidence] = (),
    ) -> tuple[Proposal, ...]:
        """The proposals, the action that recovered this alert on this target before first (`evidence` of past
        incidents), the one that did not work last time last."""
        if self._config.mode == "off" or not (correlation.new_firing or correlation.alerts):
            return ()
        alert = (correlation.new_firing or correlation.alerts)[0]
        asked: list[tuple[str, Text, dict[str, str], Origin]]
        if diagnosis.source == "llm":
            asked = [(a.action_id, a.reason, dict(a.params), "model") for a in diagnosis.actions]
            refused = [_refused(text) for text in diagnosis.dropped_actions]
        else:
            listed = message("proposal_listed")
            asked = [(action_id, listed, {}, "runbook") for action_id in runbook.actions]
            refused = []
        planned = [self.one(alert, runbook, *item) for item in asked]
        planned.sort(key=lambda proposal: rank(proposal.action_id, evidence))
        return tuple(
            dataclasses.replace(proposal, alertname=alert.name) for proposal in _unique(planned + refused)
        )

    def one(
        self,
        alert: Alert,
        runbook: RunbookMatch,
        action_id: str,
        reason: Text,
        params: Mapping[str, str],
        source: Origin,
    ) -> Proposal:
        """One proposal of `action_id` for `alert`, or a refused one saying why it cannot be."""
        action = self.action(action_id)
        if action_id not in runbook.actions:
            refusal = message("refusal_not_allowed", action=action_id)
            return Proposal(action_id, None, (), "high", reason, refusal, source)
        if action is None:
            refusal = message("refusal_not_in_catalog", action=action_id)
            return Proposal(action_id, None, (), "high", reason, refusal, source)
        try:
            command = render_command(
                action, alert.labels, alert.annotations, {**default_params(action_id), **params}
            )
            host = self._host(command.target)
        except (ActionRefused, HostNotFound) as error:
            return Proposal(action_id, None, (), action.risk, reason, error.reason, source)
        return Proposal(
            action_id,
            host,
            command.argv,
            action.risk,
            reason,
            None,
            source,
            command.timeout,
            command.output_cap,
        )

    def _host(self, target: str) -> str:
        if target.startswith("builtin:"):
            return target
        return self._inventory.resolve(target)[0]


def _refused(dropped: Text) -> Proposal:
    proposed = message("proposal_by_model")
    if isinstance(dropped, Message):
        action_id, why = str(dropped.params.get("action", "")), dropped.params.get("why", dropped)
        return Proposal(
            action_id, None, (), "high", proposed, why if isinstance(why, Message) else dropped, "model"
        )
    action_id, _, why = dropped.partition(": ")
    return Proposal(action_id, None, (), "high", proposed, why or dropped, "model")


def _unique(proposals: list[Proposal]) -> list[Proposal]:
    seen: set[tuple[str, tuple[str, ...], str | None]] = set()
    kept = []
    for proposal in proposals:
        key = (proposal.action_id, proposal.argv, proposal.host)
        if key not in seen:
            seen.add(key)
            kept.append(proposal)
    return kept
