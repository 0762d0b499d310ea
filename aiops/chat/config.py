"""The `chat` section: who may ask aiops in chat, and how much one person's questions may spend.

```yaml
chat:
  askers:                  # who may message aiops directly, per channel kind (ids as remediation.approvers lists)
    feishu: [ou_1a2b3c]
    dingtalk: ["manager4821"]
  questions_per_hour: 20   # per person; past it the answer says so and the model is not called
  max_steps: 4             # rounds of read-only tool calls a question may take
  token_budget: 20000      # tokens one question may spend with the model
  deadline: 2m             # how long its model calls may take; then the answer is what aiops knows
```

In a group, anyone who mentions aiops is answered (the group is the boundary; commands still need the approvals
they need); approvers (`remediation.approvers`) may always message it directly.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aiops.units import Seconds

# Bounds of what a question may hold and what a thread remembers.
MAX_QUESTION = 2000  # characters of a question kept; the rest is cut with a note
TURNS_KEPT = 6  # last questions and answers of a thread given to the next question
TURN_CHARS = 1500  # characters of each kept turn


class ChatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    askers: dict[str, list[str]] = Field(default_factory=dict)
    questions_per_hour: Annotated[int, Field(ge=1, le=10000)] = 20
    max_steps: Annotated[int, Field(ge=1, le=10)] = 4
    token_budget: Annotated[int, Field(ge=1000, le=1_000_000)] = 20000
    # Seconds a question's model call (with its tools) may take before the answer falls back to what the
    # store knows.
    deadline: Annotated[Seconds, Field(gt=0, le=600)] = 120.0

    @field_validator("askers")
    @classmethod
    def _listed(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {kind: people for kind, people in value.items() if people}

    def may_ask_directly(self, kind: str, user: str, approvers: dict[str, list[str]]) -> bool:
        """Whether `user` may message aiops one to one through `kind`: an asker or an approver there."""
        return user in self.askers.get(kind, ()) or user in approvers.get(kind, ())
