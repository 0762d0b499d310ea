"""The one path from a person's choice to a decision, whatever carried it: a card's button on any platform, the web
approval page's link, or (later) a chat command. A platform only translates: its payload into a `Press`, and the
`Decided` that comes back into its answer (a toast, a notice, an edited card).

`decide` checks that the proposal exists and is the command the card showed (the start of its argv hash), decides
through `Approvals.decide` — allow-listed people only, through the kind they acted in, single use — or pauses
automatic remediation, and returns the incident's announcement as it now stands when the decision changed what its
card shows.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.actions import guardrails
from aiops.actions.approvals import Actor, Approvals
from aiops.channels import Announcement
from aiops.i18n import message
from aiops.models import Message
from aiops.store import actions

log = logging.getLogger("aiops.channels.decisions")

# Hex digits of a proposal's argv hash a button carries: the decision is bound to that command.
HASH_PREFIX = 16
Choice = Literal["approve", "reject", "pause"]
_BUTTON = "aiops"
# Every platform's user ids are printable ASCII; anything else (a NUL above all) is no one's, and would not even fit
# the audit trail.
_IDENTITY = re.compile(r"[!-~]{1,256}")
_HASH = re.compile(f"[0-9a-f]{{{HASH_PREFIX}}}")
# Outcomes after which the card shows its proposals' new states; a refusal or an unknown proposal changes nothing.
SHOWN = frozenset({"approved", "rejected", "already", "expired", "moot"})

# The incident's card as it now stands, showing the proposals of one delivery (incident id, delivery id).
CurrentCard = Callable[[int, int], Awaitable[Announcement | None]]


@dataclass(frozen=True)
class Press:
    """A person's choice: who (`user`, their id on the platform), through which channel kind (`kind`, the key of
    `remediation.approvers` they must be listed under), approve or reject which proposal — bound to the start of
    the argv hash they were shown — or pause automatic remediation from an incident's card."""

    kind: str
    user: str
    choice: Choice
    proposal_id: int | None = None
    hash_prefix: str = ""
    incident_id: int | None = None


@dataclass(frozen=True)
class Decided:
    """What a press did. `outcome`: approved, rejected, already, expired, moot, refused, not_found, changed (the
    proposal is not the command shown), or for a pause paused, already, refused. `message` is what to tell the
    person; `allowed` whether they are an approver; `proposal` the proposal as it now stands; `announcement` the
    incident's card now, when the outcome changed what it shows and it could be read in time."""

    outcome: str
    message: Message
    allowed: bool
    proposal: Mapping[str, Any] | None = None
    announcement: Announcement | None = None

    @property
    def took_effect(self) -> bool:
        return self.outcome in ("approved", "rejected", "paused")


@dataclass(frozen=True)
class Button:
    """What a button carries where the platform gives it one opaque string (WeCom's `key`, Discord's
    `custom_id`): `aiops:approve:<proposal>:<hash prefix>`, `aiops:reject:…`, or `aiops:pause:<incident>`."""

    choice: Choice
    proposal_id: int | None = None
    hash_prefix: str = ""
    incident_id: int | None = None

    def text(self) -> str:
        if self.choice == "pause":
            return f"{_BUTTON}:pause:{self.incident_id}"
        return f"{_BUTTON}:{self.choice}:{self.proposal_id}:{self.hash_prefix}"

    @classmethod
    def parse(cls, text: str) -> Button | None:
        """The button a string names, or None for strings this module did not make (WeCom cards posted before
        the `aiops:` prefix carried none)."""
        parts = text.removeprefix(f"{_BUTTON}:").split(":")
        if len(parts) not in (2, 3) or not _number(parts[1]):
            return None
        if parts[0] == "pause" and len(parts) == 2:
            return cls("pause", incident_id=int(parts[1]))
        if parts[0] in ("approve", "reject") and len(parts) == 3 and _HASH.fullmatch(parts[2]):
            return cls(cast(Choice, parts[0]), proposal_id=int(parts[1]), hash_prefix=parts[2])
        return None

    def press(self, kind: str, user: str) -> Press:
        return Press(kind, user, self.choice, self.proposal_id, self.hash_prefix, self.incident_id)


def _number(text: str) -> bool:
    return text.isascii() and text.isdecimal() and len(text) <= 18


class Decisions:
    """Decides presses against the store and the approvals; it holds no state of its own."""

    def __init__(
        self,
        engine: AsyncEngine,
        approvals: Approvals,
        card: CurrentCard | None = None,
        card_within: float = 1.5,
    ) -> None:
        self._engine = engine
        self._approvals = approvals
        self._card = card
        self._card_within = card_within  # seconds the refreshed card may take; past that it is left out

    async def decide(self, press: Press, *, card: bool = True) -> Decided:
        """What `press` asks, decided; with the card as it now stands unless `card` is False (the web page)."""
        if not _IDENTITY.fullmatch(press.user):
            log.warning("%s press by a user id that no one has: %r", press.kind, press.user[:80])
            return Decided("refused", message("decision_not_approver", who="?", channel=press.kind), False)
        allowed = self._approvals.config.approvers.allows(press.kind, press.user)
        if press.choice == "pause":
            return await self._pause(press, allowed)
        if press.proposal_id is None:
            return Decided("not_found", message("decision_not_found", id=0), allowed)
        async with self._engine.connect() as conn:
            item = await actions.proposal(conn, press.proposal_id)
        if item is None:
            return Decided("not_found", message("decision_not_found", id=press.proposal_id), allowed)
        hashed = str(item["argv_hash"])
        if len(press.hash_prefix) < HASH_PREFIX or not hashed.startswith(press.hash_prefix):
            log.warning(
                "%s press by %s on proposal %d names another command", press.kind, press.user, item["id"]
            )
            return Decided("changed", message("decision_changed"), allowed, item)
        actor = Actor(press.kind, press.user)
        decision = await self._approvals.decide(
            press.proposal_id, press.choice == "approve", actor, expected_hash=hashed
        )
        log.info(
            "%s press by %s on proposal %d: %s", press.kind, press.user, press.proposal_id, decision.outcome
        )
        proposal = decision.proposal or item
        shown = await self._current(proposal) if card and decision.outcome in SHOWN else None
        return Decided(decision.outcome, decision.message, allowed, proposal, shown)

    async def _pause(self, press: Press, allowed: bool) -> Decided:
        config = self._approvals.config
        switched = await guardrails.switch(self._engine, config, True, press.kind, press.user)
        log.info(
            "%s pause press by %s on incident %s: %s",
            press.kind,
            press.user,
            press.incident_id,
            switched.outcome,
        )
        return Decided(switched.outcome, switched.message, allowed)

    async def _current(self, proposal: Mapping[str, Any]) -> Announcement | None:
        """The incident's card now, or None when it takes too long or fails: the decision stands either way, and
        the card is edited again when the action's result is announced."""
        if self._card is None:
            return None
        try:
            return await asyncio.wait_for(
                self._card(int(proposal["incident_id"]), int(proposal["delivery_id"])), self._card_within
            )
        except TimeoutError:
            log.warning(
                "the card for proposal %d took over %.1fs to read; answered without it",
                proposal["id"],
                self._card_within,
            )
        except Exception:  # the decision is made; a card that cannot be read must not turn it into an error
            log.exception("the card for proposal %d could not be read", proposal["id"])
        return None
