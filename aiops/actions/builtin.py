"""Actions aiops performs itself, without SSH: silencing the alert in Alertmanager, and acknowledging the incident.

They sit beside the catalog's actions — a runbook allows them by listing their ids, the model may propose them,
and they pass through the same approval — but their "argv" is aiops's own verb, and their host is the service they
act on. The silence's duration is a parameter the model may choose; its pattern bounds it to 1 minute … 7 days.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from aiops.actions.catalog import Action, Param

SILENCE = "silence"
ACKNOWLEDGE = "acknowledge"
DEFAULT_SILENCE = "2h"
_DURATION = re.compile(r"([1-9][0-9]{0,3}m|[1-9][0-9]{0,2}h|[1-7]d)")

BUILTINS: MappingProxyType[str, Action] = MappingProxyType(
    {
        SILENCE: Action(
            id=SILENCE,
            description="Silence this incident's alerts in Alertmanager for a while (default 2h)",
            argv=("silence", "{duration}"),
            params=MappingProxyType({"duration": Param("duration", "proposal", _DURATION)}),
            target="builtin:alertmanager",
            risk="low",
            timeout=15.0,
            output_cap=4096,
        ),
        ACKNOWLEDGE: Action(
            id=ACKNOWLEDGE,
            description="Acknowledge the incident: someone is on it",
            argv=("acknowledge",),
            params=MappingProxyType({}),
            target="builtin:aiops",
            risk="low",
            timeout=5.0,
            output_cap=4096,
        ),
    }
)


def default_params(action_id: str) -> dict[str, str]:
    """What a built-in's parameters are when nobody chose them."""
    return {"duration": DEFAULT_SILENCE} if action_id == SILENCE else {}


def seconds(duration: str) -> int:
    """`90m` → 5400; the duration already matched its pattern."""
    number, unit = int(duration[:-1]), duration[-1]
    return number * {"m": 60, "h": 3600, "d": 86400}[unit]
