"""`aiops incidents export ID`: an incident's whole record as one markdown document, for a postmortem or the
team's knowledge base — its alerts, evidence, diagnosis, proposals and their decisions, executions, outcome, the
fault process's timeline and the audit trail, said in `server.language` (template: export/incident.md.j2)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.store import actions, incidents, process
from aiops.store.codec import dumps, loads

TEMPLATE = "export/incident.md.j2"


async def incident_markdown(
    engine: AsyncEngine, templates: Environment, base_url: str, incident_id: int
) -> str | None:
    """The record as markdown, in the language of `templates`; None when there is no incident `incident_id`."""
    record = await _record(engine, incident_id)
    if record is None:
        return None
    return templates.get_template(TEMPLATE).render(incident=record, base_url=base_url)


async def _record(engine: AsyncEngine, incident_id: int) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        found = await incidents.detail(conn, incident_id)
        if found is None:
            return None
        remediation = await actions.of_incident(conn, incident_id)
        stages = await process.timeline(conn, incident_id) or []
    found.update(loads(dumps(remediation)))
    found["process"] = loads(dumps([stage.as_dict() for stage in stages]))
    return found
