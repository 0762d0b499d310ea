"""The approval page a chat link opens: GET shows exactly what would run, POST (from that page's form) decides.

A GET never acts, because link previews and scanners fetch links. The approver signs in with HTTP Basic against
`remediation.web_users`, or — when `remediation.trusted_user_header` is set — is named by the authenticating proxy
in front of the service. Both kinds of credentials travel with any request the browser makes, including a form
another site submits, so the form carries a proof: an HMAC of the link's token and the user name under the signing
key. Only a page this service rendered for that user holds it, and no other site can read that page.
The token stays out of the logs (nothing here logs it, and `aiops serve` has no access log) and out of the
Referer header (`Referrer-Policy: no-referrer`).
"""

from __future__ import annotations

import asyncio
import hmac
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from aiops.actions.links import (
    PATH,
    BadToken,
    TokenClaims,
    form_proof,
    proof_matches,
    read_token,
    signing_key,
)
from aiops.actions.policy import RemediationConfig
from aiops.channels.decisions import Choice, Decided, Press
from aiops.passwords import verify_password
from aiops.service import Services
from aiops.store import actions
from aiops.web.auth import basic_credentials

CHANNEL = "web"
PAGE = "pages/approval.html.j2"
MAX_FORM = 4096  # the form has two short fields
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # a framed page could trick a click on Approve
    "Content-Security-Policy": "frame-ancestors 'none'",
}
# The page's context when nothing is given: a notice, a decision's result, or the confirmation form.
_NOTHING: dict[str, Any] = {
    "notice": None,
    "values": {},
    "user": None,
    "item": None,
    "decision": None,
    "blocked": None,
    "proof": None,
}
# How each outcome answers over HTTP; the page says the rest.
_STATUS = {
    "approved": 200,
    "rejected": 200,
    "already": 200,
    "refused": 409,
    "changed": 409,
    "expired": 409,
    "moot": 409,
}


def routes() -> list[Route]:
    return [
        Route(PATH, page, methods=["GET"]),
        Route(PATH, decide, methods=["POST"]),
    ]


async def page(request: Request) -> Response:
    """The confirmation page: what would run where and why, and the Approve / Reject form."""
    visit = await _admit(request)
    if isinstance(visit, Response):
        return visit
    async with visit.services.engine.connect() as conn:
        item = await actions.proposal(conn, visit.claims.proposal_id)
    if item is None:
        return _invalid(request, "gone")
    blocked = _blocked(visit.services.settings.remediation, item, visit.claims, visit.user)
    proof = form_proof(visit.key, visit.token, visit.user) if blocked is None else None
    return _html(request, {"user": visit.user, "item": _view(item), "blocked": blocked, "proof": proof})


async def decide(request: Request) -> Response:
    """Approve or reject through `Approvals.decide`, bound to the argv the link was made for."""
    visit = await _admit(request)
    if isinstance(visit, Response):
        return visit
    form = await read_form(request)
    if form is None or not proof_matches(visit.key, visit.token, visit.user, form.get("proof", "")):
        return _message(request, "approval_stale_form", 403)
    choice = form.get("decision")
    if choice not in ("approve", "reject"):
        return _message(request, "approval_no_choice", 400)
    chosen: Choice = "approve" if choice == "approve" else "reject"
    press = Press(CHANNEL, visit.user, chosen, visit.claims.proposal_id, visit.claims.argv_hash)
    return _result(request, visit.user, await visit.services.decisions.decide(press, card=False))


@dataclass(frozen=True)
class _Visit:
    """A signed-in person holding a valid link."""

    services: Services
    user: str
    key: bytes
    token: str
    claims: TokenClaims


async def _admit(request: Request) -> _Visit | Response:
    """Who is asking and what their link claims; or the answer when they are not signed in or the link is bad.
    The login comes first, so that someone without one learns nothing, not even whether a link is valid."""
    services: Services = request.app.state.services
    config = services.settings.remediation
    user = await signed_in(config, request)
    if user is None:
        return _login_required(request, config)
    key = await signing_key(services.engine, config)
    token = request.path_params["token"]
    try:
        claims = read_token(key, token, time.time())
    except BadToken as bad:
        return _invalid(request, bad.reason)
    return _Visit(services, user, key, token, claims)


async def signed_in(config: RemediationConfig, request: Request) -> str | None:
    """Who is asking: the trusted proxy's header when one is configured, else a `web_users` Basic login."""
    if config.trusted_user_header is not None:
        return request.headers.get(config.trusted_user_header, "").strip() or None
    credentials = basic_credentials(request.headers.get("authorization"))
    if credentials is None:
        return None
    username, password = credentials
    login = next(
        (u for u in config.web_users if hmac.compare_digest(u.username.encode(), username.encode())), None
    )
    # scrypt takes tens of milliseconds: off the event loop, so a guesser does not stall every other request.
    if login is None or not await asyncio.to_thread(verify_password, password, login.password_hash):
        return None
    return login.username


def _blocked(config: RemediationConfig, item: dict[str, Any], claims: TokenClaims, user: str) -> str | None:
    """Why the page shows no buttons (a translation key), or None when a decision can take effect."""
    if item["argv_hash"] != claims.argv_hash:
        return "approval_blocked_changed"
    if item["state"] != "pending":
        return "approval_blocked_settled"
    if item["expires_at"] is not None and item["expires_at"].timestamp() <= time.time():
        return "approval_blocked_expired"
    if not config.approvers.allows(CHANNEL, user):
        return "approval_blocked_not_approver"
    return None


def _view(item: Mapping[str, Any]) -> dict[str, Any]:
    """The proposal as the page shows it: the command line quoted as a shell would need it, minutes left."""
    expires = item["expires_at"]
    left = None if expires is None else max(0, int((expires.timestamp() - time.time()) // 60))
    return {**item, "command": shlex.join(item["argv"]), "minutes_left": left}


def _result(request: Request, user: str, decision: Decided) -> Response:
    item = _view(decision.proposal) if decision.proposal is not None else None
    return _html(
        request, {"user": user, "item": item, "decision": decision}, _STATUS.get(decision.outcome, 404)
    )


async def read_form(request: Request) -> dict[str, str] | None:
    """The urlencoded form's fields (the first value of each), or None when it is too large or not a form."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return None
    try:
        fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10)
    except ValueError:  # more fields than any form of ours has
        return None
    return {name: values[0] for name, values in fields.items()}


def _login_required(request: Request, config: RemediationConfig) -> Response:
    if config.trusted_user_header is not None:
        # The proxy signs people in; asking the browser for a password would bypass it.
        return _message(request, "approval_proxy_login_required", 401, header=config.trusted_user_header)
    response = _message(request, "approval_login_required", 401)
    response.headers["WWW-Authenticate"] = 'Basic realm="aiops approvals"'
    return response


def _invalid(request: Request, reason: str) -> Response:
    return _message(request, "approval_invalid", 404, reason=reason)


def _message(request: Request, key: str, status: int, **values: str) -> HTMLResponse:
    return _html(request, {"notice": key, "values": values}, status)


def _html(request: Request, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    services: Services = request.app.state.services
    body = services.templates.get_template(PAGE).render(**{**_NOTHING, **context})
    return HTMLResponse(body, status_code=status, headers=_HEADERS)
