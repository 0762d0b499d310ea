"""The incidents, as JSON (`/api/v1/incidents…`) and as pages (`/`, `/incidents/{id}`), from the same queries."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from aiops import i18n
from aiops.grafana.dashboards import dashboard_url
from aiops.i18n import message
from aiops.models import Message
from aiops.service import Services
from aiops.sources.history import key_label, outcome_line, similar
from aiops.store import actions, clusters, incidents, process, verifications
from aiops.store.codec import MAX_ID, dumps, loads
from aiops.web.auth import viewer_allowed
from aiops.web.responses import error

MAX_LIMIT = 200
_STATUSES = ("open", "resolved")


class BadQuery(Exception):
    """A query parameter that cannot be used; `reason` names it."""

    def __init__(self, reason: Message) -> None:
        super().__init__(str(reason))
        self.reason = reason


def _guard(request: Request) -> Response | None:
    services: Services = request.app.state.services
    if viewer_allowed(services.settings.server, request):
        return None
    return error(
        401, "viewer credentials required (server.viewers)", {"WWW-Authenticate": 'Basic realm="aiops"'}
    )


def _query(request: Request) -> tuple[str | None, int, int | None]:
    params = request.query_params
    status = params.get("status") or None
    if status is not None and status not in _STATUSES:
        raise BadQuery(message("query_bad_status", allowed=", ".join(_STATUSES), value=repr(status)))
    limit = _integer(params.get("limit", "50"), "limit", 1, MAX_LIMIT)
    before = _integer(params["before"], "before", 0, MAX_ID) if params.get("before") else None
    return status, limit, before


def _integer(value: str, name: str, least: int, most: int) -> int:
    number = _whole(value)
    if number is None:
        raise BadQuery(message("query_not_a_number", name=name, value=repr(value[:40])))
    if not least <= number <= most:
        raise BadQuery(message("query_out_of_range", name=name, least=least, most=most))
    return number


def _whole(value: str) -> int | None:
    """`value` as a number when it is written in ASCII digits: `str.isdigit()` also accepts '²', which `int()`
    refuses, and '٣', which `int()` reads as 3. Past 19 digits it is only said to be large (`MAX_ID + 1`), since
    `int()` refuses over 4300 digits and no id or limit is that long."""
    if not (value.isascii() and value.isdigit()):
        return None
    digits = value.lstrip("0") or "0"
    return int(digits) if len(digits) <= len(str(MAX_ID)) else MAX_ID + 1


def _incident_id(request: Request) -> int | None:
    """The path's incident id, or None when no incident can have it (not a number, or past the store's ids)."""
    number = _whole(request.path_params["incident_id"])
    return number if number is not None and number <= MAX_ID else None


async def _page(request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    status, limit, before = _query(request)
    async with services.engine.connect() as conn:
        items = await incidents.list_page(conn, status, limit, before)
    following = None
    if len(items) == limit:
        following = f"?before={items[-1]['id']}&limit={limit}" + (f"&status={status}" if status else "")
    return {"incidents": items, "status": status, "next": following}


async def _detail(request: Request, links: bool = False) -> dict[str, Any] | None:
    """The incident with its proposals and audit trail; with `links`, each pending proposal's approval page."""
    services: Services = request.app.state.services
    incident_id = _incident_id(request)
    if incident_id is None:
        return None
    async with services.engine.connect() as conn:
        found = await incidents.detail(conn, incident_id)
        remediation = await actions.of_incident(conn, incident_id) if found is not None else None
        storm = await clusters.summary(conn, incident_id) if found is not None else None
        if found is None or remediation is None:
            return None
        stages = await process.timeline(conn, incident_id)
        await verifications.attach(conn, remediation["proposals"])
        found["breaker"] = await verifications.breaker(conn)
        found["similar"] = await _similar(conn, found)
    found.update(loads(dumps(remediation)))
    found["cluster"] = storm
    found["process"] = loads(dumps([stage.as_dict() for stage in stages or []]))
    if links:
        urls = await services.approvals.links(services.settings.server.base_url, remediation["proposals"])
        for item in found["proposals"]:
            item["approval_url"] = urls.get(item["id"])
    return found


async def _similar(conn: Any, found: dict[str, Any]) -> list[dict[str, Any]]:
    """Past incidents of the same alert on the same target, each with what ran on it and what came of it."""
    if not found["alerts"]:
        return []
    alert = found["alerts"][0]
    same = await similar(conn, alert["name"], found["id"], key_label(alert["labels"]), 5)
    return [
        {
            "id": item["id"],
            "status": item["status"],
            "opened_at": item["opened_at"],
            "resolved_at": item["resolved_at"],
            "outcomes": [outcome_line(outcome) for outcome in item["outcomes"]],
        }
        for item in same
    ]


async def api_list(request: Request) -> Response:
    if (denied := _guard(request)) is not None:
        return denied
    try:
        page = await _page(request)
    except BadQuery as bad:
        return error(400, str(bad))
    if page["next"]:
        page["next"] = "/api/v1/incidents" + page["next"]
    return JSONResponse(page)


async def api_detail(request: Request) -> Response:
    if (denied := _guard(request)) is not None:
        return denied
    found = await _detail(request)
    if found is None:
        return error(404, str(_missing(request)))
    services: Services = request.app.state.services
    return JSONResponse(i18n.plain(loads(dumps(found)), services.settings.server.language))


async def page_list(request: Request) -> Response:
    if (denied := _guard(request)) is not None:
        return denied
    try:
        page = await _page(request)
    except BadQuery as bad:
        return _html(request, "pages/error.html.j2", {"message": bad.reason}, 400)
    return _html(request, "pages/index.html.j2", page)


async def page_detail(request: Request) -> Response:
    if (denied := _guard(request)) is not None:
        return denied
    found = await _detail(request, links=True)
    if found is None:
        return _html(request, "pages/error.html.j2", {"message": _missing(request)}, 404)
    dashboard = await _dashboard_url(request, found["id"])
    return _html(request, "pages/incident.html.j2", {"incident": found, "dashboard_url": dashboard})


async def _dashboard_url(request: Request, incident_id: int) -> str | None:
    """The Grafana dashboard showing the incident, as announcements link to it."""
    services: Services = request.app.state.services
    if services.settings.grafana.url is None:
        return None
    async with services.engine.connect() as conn:
        incident = await incidents.get(conn, incident_id)
    return dashboard_url(services.settings.grafana, incident) if incident is not None else None


def _missing(request: Request) -> Message:
    return message("page_no_incident", id=request.path_params["incident_id"][:40])


def _html(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    services: Services = request.app.state.services
    body = services.templates.get_template(name).render(**context)
    return HTMLResponse(body, status_code=status)
