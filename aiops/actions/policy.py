"""The `remediation` section: what may run, after whose approval, how often."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, SecretStr, field_validator

from aiops.passwords import Login
from aiops.units import Seconds

Mode = Literal["off", "suggest", "approve", "auto"]


class Approvers(RootModel[dict[str, list[str]]]):
    """Who may approve, keyed by the channel kind they decide through (`feishu` open_ids, `dingtalk` staff ids,
    …) and `web` user names, `cli` local users. Which keys exist is the channel registry's to say
    (aiops/channels/registry.py `approver_keys`); the settings check them."""

    model_config = ConfigDict(frozen=True)

    root: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("root")
    @classmethod
    def _listed(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        """A kind listing nobody is the same as a kind not listed."""
        return {kind: people for kind, people in value.items() if people}

    def allows(self, channel: str, identity: str) -> bool:
        return identity in self.root.get(channel, ())


class Budgets(BaseModel):
    """How much `auto` may run by itself; past a budget a proposal waits for an approval like a `high` one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Automatic runs per alert rule (alertname) in the last hour, and for the whole service.
    per_rule_per_hour: Annotated[int, Field(ge=1, le=10000)] = 5
    per_hour: Annotated[int, Field(ge=1, le=10000)] = 20
    # Distinct hosts touched automatically per storm cluster: a storm is one cause, so a fix that needs many
    # hosts at once is a decision for a person.
    hosts_per_storm: Annotated[int, Field(ge=1, le=10000)] = 3


class BreakerConfig(BaseModel):
    """Stop automatic execution when `threshold` of the `last` automatic executions went badly (failed, or did not
    recover the incident): with the defaults, 5 of the last 10, AWS's default error threshold for its fixes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    last: Annotated[int, Field(ge=1, le=1000)] = 10
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.5

    @property
    def trips_at(self) -> int:
        """How many bad outcomes among the last `last` trip it."""
        return max(1, math.ceil(self.last * self.threshold))


# severity → channel name → the platform ids to @mention there (Feishu open_ids, DingTalk staff ids, robot ids)
Escalation = dict[str, dict[str, list[str]]]


class RemediationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # off: nothing proposed; suggest: proposals shown, never run; approve: every action needs an approval;
    # auto: `low` actions run at once, `high` (and `read`) still need an approval.
    mode: Mode = "approve"
    dry_run: bool = False  # render, record and approve, but never connect
    approval_ttl: Seconds = 1800.0
    max_per_hour: Annotated[int, Field(ge=1, le=1000)] = 3  # executions per action and host
    budgets: Budgets = Field(default_factory=Budgets)  # of `auto`: per alert rule, service, storm cluster
    approvers: Approvers = Field(default_factory=Approvers)
    # Approvers' logins on the web approval page (hashes from `aiops hash-password`) ...
    web_users: list[Login] = Field(default_factory=list)
    # ... or the header a trusted, authenticating reverse proxy sets (e.g. X-Forwarded-User).
    trusted_user_header: str | None = None
    # Signs approval links; one is generated and kept in the store when unset (all replicas share it).
    signing_key: SecretStr | None = None
    # After an execution: how often the verification looks again (the window is the action's `verify.window`).
    verify_every: Annotated[Seconds, Field(gt=0, le=600)] = 5.0
    # A fix that did not recover the incident, or failed: whom to @mention, by severity and channel name ...
    escalation: Escalation = Field(default_factory=dict)
    # ... and the channels that also get the escalation, even when their `match` does not take the incident.
    escalate_to: list[str] = Field(default_factory=list)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)

    def escalation_for(self, severity: str, channel: str) -> tuple[str, ...]:
        return tuple(self.escalation.get(severity, {}).get(channel, ()))
