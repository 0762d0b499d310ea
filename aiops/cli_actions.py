"""`aiops approvals list|approve ID|reject ID` and `aiops audit export --since …`: remediation from a terminal.

The CLI approves as the local user (`remediation.approvers.cli`); the service's workers run what was approved.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiops.actions.approvals import Actor, Approvals
from aiops.config import Settings
from aiops.store import actions
from aiops.store.codec import dumps
from aiops.store.engine import create_engine

Load = Callable[[argparse.Namespace], Settings]
_EXIT = {"approved": 0, "rejected": 0, "already": 0, "not_found": 1}


def add_commands(sub: Any, load: Load) -> None:
    approvals = sub.add_parser("approvals", help="pending actions: list, approve, reject").add_subparsers(
        required=True, metavar="ACTION"
    )
    approvals.add_parser("list", help="actions waiting for an approval").set_defaults(
        command=lambda args: asyncio.run(_list(load(args)))
    )
    for verb in ("approve", "reject"):
        parser = approvals.add_parser(verb, help=f"{verb} a proposed action, as the local user")
        parser.add_argument("id", type=int, help="the proposal's id (see `aiops approvals list`)")
        parser.set_defaults(command=lambda args, verb=verb: asyncio.run(_decide(load(args), args.id, verb)))
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(required=True, metavar="ACTION")
    export = audit.add_parser("export", help="audit events as JSON lines")
    export.add_argument("--since", type=_moment, required=True, help="ISO date or time, e.g. 2026-11-01")
    export.set_defaults(command=lambda args: asyncio.run(_export(load(args), args.since)))


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or time such as 2026-11-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _list(settings: Settings) -> int:
    engine = create_engine(settings.database)
    try:
        await Approvals(engine, settings.remediation).expire()
        async with engine.connect() as conn:
            waiting = await actions.pending(conn)
    finally:
        await engine.dispose()
    for item in waiting:
        print(
            f"#{item['id']}  incident {item['incident_id']}  {item['action_id']} on {item['host']}  "
            f"risk {item['risk']}  until {item['expires_at']:%Y-%m-%d %H:%M} UTC\n"
            f"      {' '.join(item['argv'])}\n      {item['reason']}"
        )
    if not waiting:
        print("nothing waits for an approval")
    return 0


async def _decide(settings: Settings, proposal_id: int, verb: str) -> int:
    engine = create_engine(settings.database)
    try:
        decision = await Approvals(engine, settings.remediation).decide(
            proposal_id, verb == "approve", Actor("cli", getpass.getuser())
        )
    finally:
        await engine.dispose()
    stream = sys.stdout if decision.outcome in ("approved", "rejected", "already") else sys.stderr
    print(decision.message, file=stream)
    return _EXIT.get(decision.outcome, 1)


async def _export(settings: Settings, since: datetime) -> int:
    engine = create_engine(settings.database)
    try:
        async with engine.connect() as conn:
            events = await actions.audit_since(conn, since.timestamp())
    finally:
        await engine.dispose()
    for event in events:
        print(dumps(event))
    return 0
