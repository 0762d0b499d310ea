"""Callbacks from chat platforms: the Approve / Reject buttons on a card, clicked in the chat.

`POST /callbacks/feishu` receives Feishu's `card.action.trigger` callbacks (HTTP callback mode). A request that does
not prove it came from Feishu is answered 401 and nothing in it is read further. A click decides through
`Approvals.decide` — allow-listed open_ids only (`remediation.approvers.feishu`), bound to the command the card
showed — and is answered within Feishu's 3 seconds with a toast and, when the decision took effect, the card as it
now stands. Feishu never re-sends a callback, so a click that fails is simply clicked again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aiops.actions.approvals import Actor, Decision
from aiops.channels import Announcement
from aiops.channels.feishu import FeishuConfig
from aiops.channels.feishu import callback as feishu_callback
from aiops.channels.feishu.card import HASH_PREFIX, Cards
from aiops.service import Services
from aiops.store import actions, incidents
from aiops.web.responses import error

log = logging.getLogger("aiops.web.callbacks")
FEISHU = "feishu"
MAX_BODY = 64 * 1024  # a callback is a few kilobytes
RENDER_WITHIN = 1.5  # seconds for the updated card; past that the toast goes alone (Feishu waits 3 s in all)
_TOAST = {"approved": "success", "rejected": "success", "already": "info"}  # any other outcome: "error"

ConfigFor = Callable[[Services], FeishuConfig | None]


def feishu_config(services: Services) -> FeishuConfig | None:
    """The Feishu app whose callbacks this service receives: `channels.feishu` (or the first of a list that has
    callback keys)."""
    configured = getattr(services.settings.channels, "feishu", None)
    if isinstance(configured, list | tuple):
        configured = next((item for item in configured if item.accepts_callbacks), None)
    return configured if isinstance(configured, FeishuConfig) else None


def routes(config_for: ConfigFor = feishu_config) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        return await feishu(request, config_for(request.app.state.services))

    return [Route("/callbacks/feishu", endpoint, methods=["POST"], name="feishu_callback")]


async def feishu(request: Request, config: FeishuConfig | None) -> Response:
    """One Feishu callback: URL verification, or a card button click."""
    if config is None:
        return error(404, "no Feishu app is configured (channels.feishu)")
    body = await _body(request)
    if body is None:
        return error(413, f"a callback is at most {MAX_BODY} bytes")
    try:
        payload = feishu_callback.open_request(config, body, request.headers)
    except feishu_callback.Refused as refused:
        log.warning("refused a Feishu callback: %s", refused)
        return error(401, str(refused))
    if feishu_callback.is_url_verification(payload):
        return JSONResponse({"challenge": str(payload.get("challenge", ""))})
    if feishu_callback.event_type(payload) != feishu_callback.CARD_ACTION:
        return JSONResponse({})  # some other event this app subscribed to: acknowledged, ignored
    services: Services = request.app.state.services
    try:
        click = feishu_callback.click(payload)
    except feishu_callback.Malformed as malformed:
        log.warning("a Feishu click could not be read: %s", malformed)
        return JSONResponse(_toast(services, "error", refusal="malformed"))
    return JSONResponse(await answer_click(services, click))


async def answer_click(services: Services, click: feishu_callback.Click) -> dict[str, Any]:
    """Decide what `click` asks and say how it went, in Feishu's callback answer: a toast, and the updated card when
    the decision took effect. (The long-connection mode, when it comes, answers through this too.)"""
    async with services.engine.connect() as conn:
        item = await actions.proposal(conn, click.proposal_id)
    if item is None:
        return _toast(services, "error", outcome="not_found", message="")
    if len(click.hash_prefix) < HASH_PREFIX or not str(item["argv_hash"]).startswith(click.hash_prefix):
        log.warning("Feishu click by %s on proposal %d names another command", click.open_id, item["id"])
        return _toast(services, "error", refusal="changed")
    decision = await services.approvals.decide(
        click.proposal_id, click.approve, Actor(FEISHU, click.open_id), expected_hash=item["argv_hash"]
    )
    log.info("Feishu click by %s on proposal %d: %s", click.open_id, item["id"], decision.outcome)
    allowed = services.settings.remediation.approvers.allows(FEISHU, click.open_id)
    answer = _toast(
        services,
        _TOAST.get(decision.outcome, "error"),
        outcome=decision.outcome,
        message=decision.message,
        refusal=None if allowed else "not_approver",
        who=click.open_id,
    )
    if decision.took_effect:
        card = await _updated_card(services, item, decision)
        if card is not None:
            answer["card"] = {"type": "raw", "data": json.loads(card)}
    return answer


def _toast(services: Services, kind: str, **context: Any) -> dict[str, Any]:
    values = {"outcome": "refused", "message": "", "refusal": None, "who": "", **context}
    content = services.templates.get_template("feishu/toast.txt.j2").render(**values).strip()
    return {"toast": {"type": kind, "content": content}}


async def _updated_card(services: Services, item: Mapping[str, Any], decision: Decision) -> str | None:
    """The card re-rendered from the incident as it now stands, or None when that takes too long or fails: the
    decision stands either way, and the card is edited again when the action's result is announced."""
    try:
        return await asyncio.wait_for(current_card(services, item), RENDER_WITHIN)
    except TimeoutError:
        log.warning(
            "the card for proposal %d took over %.1fs to render; answered without it",
            item["id"],
            RENDER_WITHIN,
        )
    except Exception:  # the decision is made; a card that cannot be rendered must not turn it into an error
        log.exception("the card for proposal %d could not be rendered after %s", item["id"], decision.outcome)
    return None


async def current_card(services: Services, item: Mapping[str, Any]) -> str | None:
    """The Feishu card of `item`'s incident now: its latest triage, with the proposals of the delivery `item`
    came from in their current states (and their executions)."""
    incident_id = item["incident_id"]
    async with services.engine.connect() as conn:
        incident = await incidents.get(conn, incident_id)
        triage = await incidents.latest_triage(conn, incident_id)
        proposals = (await actions.of_incident(conn, incident_id))["proposals"]
    if incident is None or triage is None:
        return None
    shown = [p for p in proposals if p["delivery_id"] == item["delivery_id"]]
    base_url = services.settings.server.base_url
    announcement = Announcement(
        "updated",
        incident,
        triage,
        f"{base_url}/incidents/{incident_id}",
        proposals=shown,
        approval_links=await services.approvals.links(base_url, shown),
    )
    return Cards(services.templates).announcement(announcement)


async def _body(request: Request) -> bytes | None:
    """The request body, or None past `MAX_BODY` (read no further than that)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
