"""Plan actions: concrete remediation proposals from the runbook's allowed actions. The action catalog arrives with
the remediation issue; until then no action is ever proposed."""

from __future__ import annotations

from aiops.models import Correlation, Diagnosis, Proposal, RunbookMatch


def plan_actions(
    correlation: Correlation, runbook: RunbookMatch, diagnosis: Diagnosis
) -> tuple[Proposal, ...]:
    return ()
