"""Match runbook: which of the team's runbooks covers the incident. Runbooks arrive with the runbooks issue;
until then the honest answer is that there is none."""

from __future__ import annotations

from aiops.models import Correlation, RunbookMatch


def match_runbook(correlation: Correlation) -> RunbookMatch:
    return RunbookMatch(path=None, commit=None, reason="no runbook: runbook matching is not configured")
