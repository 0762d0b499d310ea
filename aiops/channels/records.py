"""What channels are told of recorded proposals: frozen views of the store's rows, built once at the boundary.

`aiops.models.Proposal` is what the planner proposes, before it is recorded; a `ProposalRecord` is that proposal as
stored — with its id, its state, who decided it — and, once it ran, its `ExecutionRecord` and the
`VerificationRecord` saying whether it fixed the incident. Only the fields a card or a message shows are here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiops.models import Text


@dataclass(frozen=True)
class ExecutionRecord:
    """How a proposal's run went: its state, exit status and output (empty while it runs)."""

    state: str
    exit_status: int | None = None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    error: Text | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ExecutionRecord:
        """From a row of `aiops.store.actions` (`execution_of`)."""
        return cls(
            state=row["state"],
            exit_status=row.get("exit_status"),
            stdout=row.get("stdout") or "",
            stderr=row.get("stderr") or "",
            truncated=bool(row.get("truncated")),
            error=row.get("error"),
        )


@dataclass(frozen=True)
class VerificationRecord:
    """Whether a run fixed the incident: `outcome` is None while it is still watched."""

    id: int
    outcome: str | None = None  # recovered | not_recovered | unknown (aiops.store.actions.VERIFIED)
    detail: Text | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> VerificationRecord:
        """From a row of `aiops.store.verifications`."""
        return cls(id=row["id"], outcome=row.get("outcome"), detail=row.get("detail"))


@dataclass(frozen=True)
class ProposalRecord:
    """A recorded proposal, as a card shows it: the exact command an approval is bound to (`argv_hash`), its state
    (aiops.store.actions.STATES), who decided it and how, and what became of it."""

    id: int
    incident_id: int
    delivery_id: int
    action_id: str  # the catalog action it proposes
    host: str | None
    argv: tuple[str, ...]
    argv_hash: str
    risk: str
    state: str
    reason: Text | None = None
    detail: Text | None = None  # why it was refused, or what its decision said
    held: Text | None = None  # the guardrail that made one `auto` would have run wait for an approval
    expires_at: datetime | None = None
    decided_by: str | None = None
    decided_via: str | None = None  # the channel it was decided on, or `auto`
    decided_at: datetime | None = None
    execution: ExecutionRecord | None = None
    verification: VerificationRecord | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ProposalRecord:
        """From a row of `aiops.store.actions`, with its "execution" and "verification" when the caller read them."""
        execution, verification = row.get("execution"), row.get("verification")
        return cls(
            id=row["id"],
            incident_id=row["incident_id"],
            delivery_id=row["delivery_id"],
            action_id=row["action_id"],
            host=row["host"],
            argv=tuple(row["argv"]),
            argv_hash=row["argv_hash"],
            risk=row["risk"],
            state=row["state"],
            reason=row.get("reason"),
            detail=row.get("detail"),
            held=row.get("held"),
            expires_at=row.get("expires_at"),
            decided_by=row.get("decided_by"),
            decided_via=row.get("decided_via"),
            decided_at=row.get("decided_at"),
            execution=ExecutionRecord.from_row(execution) if execution is not None else None,
            verification=VerificationRecord.from_row(verification) if verification is not None else None,
        )


def proposal_records(rows: Iterable[Mapping[str, Any]]) -> tuple[ProposalRecord, ...]:
    """Rows of `aiops.store.actions`, in order, as channels receive them."""
    return tuple(ProposalRecord.from_row(row) for row in rows)
