"""Checks that prove rather than assume: each one asks the real thing (a credentialed API call, a query, a
command over SSH) and says what it found. A failed check becomes an incident through the same pipeline as an
alert (`aiops.checks.incidents`); every result is kept (`aiops.store.checks`).

Built-in self-checks live in `aiops.checks.builtin`, the user's (`checks.promql`, `checks.commands` in the
configuration) in `aiops.checks.user`; both are `Check`s, and `aiops.checks.runner` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from aiops.models import Text

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class Result:
    """What one run of a check found. `reason` names the cause in words a tired human reads ("the app secret was
    refused (code 10014)", "no answer within 5 s"), `detail` is what the other side said, quoted as it came."""

    ok: bool
    reason: Text
    value: float | None = None  # the measured number, when there is one (free ratio, queue age, days left)
    detail: str | None = None


class Check(Protocol):
    """One check. `id` is stable across runs and unique ("channel:feishu-ops", "model", "ssh:web-1",
    "tls:prometheus", or a user check's own id): results, incidents and the report are keyed by it."""

    id: str
    title: str
    severity: Severity
    runbook: str | None  # a runbook's file name (without `.md`) the incident of a failure is matched to

    async def run(self) -> Result:
        """Ask, within the check's own deadline; never raises for what the other side did (that is a failed
        `Result`)."""
        ...
