"""`aiops remediation pause|resume|status` and `aiops incidents export ID`, from a terminal.

Both talk to the store, as `aiops approvals` does, not to a running service: the switch lives in the store, so a
pause takes effect on every replica at their next proposal, and it works while the service is down or wedged —
when a kill switch is needed most. The CLI acts as the local user through the `cli` channel.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable
from typing import Any

from aiops.actions import guardrails
from aiops.config import Settings
from aiops.store.engine import create_engine

Load = Callable[[argparse.Namespace], Settings]
NOT_FOUND = 2


def add_commands(sub: Any, load: Load) -> None:
    remediation = sub.add_parser(
        "remediation", help="automatic remediation: pause, resume, status"
    ).add_subparsers(required=True, metavar="ACTION")
    for verb, said in (
        ("pause", "automatic remediation stops: `auto` proposals wait for an approval"),
        ("resume", "automatic remediation runs again (remediation.approvers.cli only)"),
    ):
        parser = remediation.add_parser(verb, help=said)
        parser.set_defaults(command=lambda args, verb=verb: asyncio.run(_switch(load(args), verb)))
    remediation.add_parser("status", help="paused or not, by whom, since when").set_defaults(
        command=lambda args: asyncio.run(_status(load(args)))
    )
    incidents = sub.add_parser("incidents", help="incidents").add_subparsers(required=True, metavar="ACTION")
    export = incidents.add_parser("export", help="an incident's whole record as markdown, for a postmortem")
    export.add_argument("id", type=int, help="the incident's id")
    export.set_defaults(command=lambda args: asyncio.run(_export(load(args), args.id)))


async def _switch(settings: Settings, verb: str) -> int:
    engine = create_engine(settings.database)
    try:
        switched = await guardrails.switch(
            engine, settings.remediation, verb == "pause", "cli", getpass.getuser()
        )
    finally:
        await engine.dispose()
    print(switched.message, file=sys.stderr if switched.outcome == "refused" else sys.stdout)
    return 1 if switched.outcome == "refused" else 0


async def _status(settings: Settings) -> int:
    from aiops.i18n import message

    engine = create_engine(settings.database)
    try:
        state = await guardrails.status(engine)
        breaker = await guardrails.breaker(engine)
    finally:
        await engine.dispose()
    if state.paused:
        print(
            message(
                "switch_status_paused",
                who=str(state.actor),
                channel=str(state.channel),
                since=guardrails.when(state),
            )
        )
    else:
        print(message("switch_status_running"))
    if breaker is not None:
        print(message("breaker_holding", reason=breaker["reason"] or ""))
    print(message("switch_mode", mode=settings.remediation.mode))
    return 0


async def _export(settings: Settings, incident_id: int) -> int:
    from aiops.export import incident_markdown
    from aiops.templating import build_environment

    templates = build_environment(settings.server.language, settings.channels.templates)
    engine = create_engine(settings.database)
    try:
        text = await incident_markdown(engine, templates, settings.server.base_url, incident_id)
    finally:
        await engine.dispose()
    if text is None:
        print(f"aiops: incident {incident_id}: no such incident", file=sys.stderr)
        return NOT_FOUND
    sys.stdout.write(text)
    return 0
