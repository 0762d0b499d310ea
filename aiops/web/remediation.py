"""The pause switch of automatic remediation over HTTP: `GET /api/v1/remediation` (viewers), `POST
/api/v1/remediation/pause|resume` (approvers), and the page `/remediation` that robots' cards link to.

Approvers sign in as on the approval page (aiops/web/approvals.py: `remediation.web_users`, or the trusted proxy's
header) and must be in `remediation.approvers.web`. Credentials travel with any request a browser makes, so the
API takes only `application/json` bodies (a form another site submits cannot send one without a CORS preflight,
which this service never grants), and the page's form carries the same proof as the approval form.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from aiops.actions import guardrails
from aiops.actions.links import form_proof, proof_matches, signing_key
from aiops.service import Services
from aiops.store.guardrails import Switch
from aiops.web.approvals import CHANNEL, read_form, signed_in
from aiops.web.auth import viewer_allowed
from aiops.web.responses import error

PAGE = "pages/remediation.html.j2"
PATH = "/remediation"
_FORM_TOKEN = "remediation-switch"  # what the page's proof is bound to, with the user name
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


def routes() -> list[Route]:
    return [
        Route("/api/v1/remediation", api_status, methods=["GET"]),
        Route("/api/v1/remediation/pause", api_pause, methods=["POST"]),
        Route("/api/v1/remediation/resume", api_resume, methods=["POST"]),
        Route(PATH, page, methods=["GET"]),
        Route(PATH, page_switch, methods=["POST"]),
    ]


def as_json(state: Switch, mode: str, breaker: dict[str, Any] | None = None) -> dict[str, Any]:
    since = None if state.since is None else state.since.isoformat()
    tripped = None
    if breaker is not None:
        tripped = {"tripped_at": breaker["tripped_at"].isoformat(), "reason": str(breaker["reason"] or "")}
    return {
        "paused": state.paused,
        "by": state.actor,
        "via": state.channel,
        "since": since,
        "mode": mode,
        "breaker": tripped,
    }


async def api_status(request: Request) -> Response:
    services: Services = request.app.state.services
    if not viewer_allowed(services.settings.server, request):
        return error(
            401, "viewer credentials required (server.viewers)", {"WWW-Authenticate": 'Basic realm="aiops"'}
        )
    state = await guardrails.status(services.engine)
    breaker = await guardrails.breaker(services.engine)
    return JSONResponse(as_json(state, services.settings.remediation.mode, breaker))


async def api_pause(request: Request) -> Response:
    return await _api_switch(request, pause=True)


async def api_resume(request: Request) -> Response:
    return await _api_switch(request, pause=False)


async def _api_switch(request: Request, *, pause: bool) -> Response:
    services: Services = request.app.state.services
    config = services.settings.remediation
    user = await signed_in(config, request)
    if user is None:
        return error(
            401,
            "approver credentials required (remediation.web_users or remediation.trusted_user_header)",
            {"WWW-Authenticate": 'Basic realm="aiops approvals"'},
        )
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return error(415, "send Content-Type: application/json (an empty object will do)")
    switched = await guardrails.switch(services.engine, config, pause, CHANNEL, user)
    body = {
        "outcome": switched.outcome,
        "message": str(switched.message),
        **as_json(switched.switch, config.mode),
    }
    return JSONResponse(body, status_code=403 if switched.outcome == "refused" else 200)


async def page(request: Request) -> Response:
    """The switch as it stands, and for an approver the form that flips it."""
    services: Services = request.app.state.services
    user = await signed_in(services.settings.remediation, request)
    if user is None:
        return _login(request)
    proof = form_proof(await signing_key(services.engine, services.settings.remediation), _FORM_TOKEN, user)
    return await _html(request, user, proof=proof)


async def page_switch(request: Request) -> Response:
    services: Services = request.app.state.services
    config = services.settings.remediation
    user = await signed_in(config, request)
    if user is None:
        return _login(request)
    form = await read_form(request)
    key = await signing_key(services.engine, config)
    if form is None or not proof_matches(key, _FORM_TOKEN, user, form.get("proof", "")):
        return await _html(request, user, notice="approval_stale_form", status=403)
    choice = form.get("decision")
    if choice not in ("pause", "resume"):
        return await _html(request, user, notice="approval_no_choice", status=400)
    switched = await guardrails.switch(services.engine, config, choice == "pause", CHANNEL, user)
    status = 403 if switched.outcome == "refused" else 200
    return await _html(
        request, user, said=switched.message, proof=form_proof(key, _FORM_TOKEN, user), status=status
    )


def _login(request: Request) -> Response:
    response = error(
        401, "approver credentials required (remediation.web_users or remediation.trusted_user_header)"
    )
    response.headers["WWW-Authenticate"] = 'Basic realm="aiops approvals"'
    return response


async def _html(request: Request, user: str, status: int = 200, **context: Any) -> HTMLResponse:
    services: Services = request.app.state.services
    state = await guardrails.status(services.engine)
    values = {
        "user": user,
        "switch": state,
        "mode": services.settings.remediation.mode,
        "proof": None,
        "notice": None,
        "said": None,
        "since": guardrails.when(state),
        **context,
    }
    body = services.templates.get_template(PAGE).render(**values)
    return HTMLResponse(body, status_code=status, headers=_HEADERS)
