"""What a chat message asks for: a command (in English or Chinese) or, failing that, a question.

Commands are the first word of the message: `ack`, `silence [2h]`, `run <action>`, `approve <id>`, `reject <id>`,
`pause auto`, and the lookups `status`, `firing`, `runbook`, `pending`, `help`. `#123` anywhere names the incident.
A command never carries a shell word: `run` names a catalog action by its id, which the catalog and the runbook
then allow or refuse, and its parameters come from the alert, never from the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verb = Literal[
    "acknowledge",
    "silence",
    "run",
    "approve",
    "reject",
    "pause",
    "status",
    "firing",
    "runbook",
    "pending",
    "help",
]

_VERBS: dict[str, Verb] = {
    "ack": "acknowledge",
    "acknowledge": "acknowledge",
    "确认": "acknowledge",
    "认领": "acknowledge",
    "silence": "silence",
    "mute": "silence",
    "静默": "silence",
    "run": "run",
    "执行": "run",
    "approve": "approve",
    "批准": "approve",
    "同意": "approve",
    "reject": "reject",
    "拒绝": "reject",
    "pause": "pause",
    "暂停": "pause",
    "暂停自动": "pause",
    "status": "status",
    "状态": "status",
    "firing": "firing",
    "告警": "firing",
    "runbook": "runbook",
    "手册": "runbook",
    "pending": "pending",
    "approvals": "pending",
    "待审批": "pending",
    "help": "help",
    "帮助": "help",
}
_INCIDENT = re.compile(r"(?<![\w#])#([0-9]{1,18})(?![0-9])")
_NUMBER = re.compile(r"#?([0-9]{1,18})")
_ACTION = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_DURATION = re.compile(
    r"([0-9]{1,4})\s*(m|min|mins|minutes?|分钟|h|hr|hrs|hours?|小时|个小时|d|days?|天)(?![a-z])", re.I
)
_UNITS = {"分钟": "m", "小时": "h", "个小时": "h", "天": "d"}
DEFAULT_SILENCE = "2h"


@dataclass(frozen=True)
class Command:
    """A command: its verb and its one argument (a duration, an action id, a proposal id), as written."""

    verb: Verb
    argument: str = ""


@dataclass(frozen=True)
class Parsed:
    """A message read: the command it gives (None: it is a question), and the incident it names with `#id`."""

    command: Command | None
    incident_id: int | None
    problem: str | None = None  # a command given wrongly: what is wrong, for the reply


def parse(text: str) -> Parsed:
    """Read one message (the mention of the bot already removed)."""
    named = _INCIDENT.search(text)
    incident_id = int(named.group(1)) if named else None
    words = text.strip().lstrip("/").split()
    if not words:
        return Parsed(None, incident_id)
    verb = _VERBS.get(words[0].lower())
    if verb is None:
        return Parsed(None, incident_id)
    rest = words[1:]
    if verb == "silence":
        return _silence(" ".join(rest), incident_id)
    if verb in ("approve", "reject"):
        found = _NUMBER.fullmatch(rest[0]) if len(rest) == 1 else None
        if found is None:
            return Parsed(None, incident_id, "proposal_id")
        return Parsed(Command(verb, found.group(1)), incident_id)
    if verb == "run":
        if len(rest) < 1 or not _ACTION.fullmatch(rest[0]):
            return Parsed(None, incident_id, "action_id")
        return Parsed(Command(verb, rest[0]), incident_id)
    if len(words) > 4 and verb not in ("pause",):
        return Parsed(None, incident_id)  # "status of the disk on web-1 since noon" is a question
    return Parsed(Command(verb), incident_id)


def _silence(rest: str, incident_id: int | None) -> Parsed:
    found = _DURATION.search(rest)
    if found is None:
        return Parsed(Command("silence", DEFAULT_SILENCE), incident_id)
    number, unit = found.group(1), found.group(2).lower()
    unit = _UNITS.get(unit, unit[0])
    return Parsed(Command("silence", f"{int(number)}{unit}"), incident_id)
