"""What a click on a Feishu card's Approve / Reject button does, however it arrived (`POST /callbacks/feishu` or
the long connection): decide through `Approvals.decide` — allow-listed open_ids only (`remediation.approvers.feishu`),
bound to the command the card showed — and answer within Feishu's 3 seconds with a toast and, when the decision
took effect, the card as it now stands. Feishu never re-sends a click, so one that fails is simply clicked again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.actions import guardrails
from aiops.actions.approvals import Actor, Approvals, Decision
from aiops.actions.policy import Approvers
from aiops.channels import Announcement
from aiops.channels.feishu.callback import Click, PauseClick
from aiops.channels.feishu.card import HASH_PREFIX, Cards
from aiops.channels.records import proposal_records
from aiops.grafana import GrafanaConfig
from aiops.grafana.dashboards import dashboard_url
from aiops.i18n import say
from aiops.store import actions, incidents

log = logging.getLogger("aiops.channels.feishu")
FEISHU = "feishu"
RENDER_WITHIN = 1.5  # seconds for the updated card; past that the toast goes alone (Feishu waits 3 s in all)
_TOAST = {"approved": "success", "rejected": "success", "already": "info"}  # any other outcome: "error"


class FeishuClicks:
    """Answers card clicks against the store; one per service."""

    def __init__(
        self,
        engine: AsyncEngine,
        approvals: Approvals,
        approvers: Approvers,
        templates: Environment,
        base_url: str,
        grafana: GrafanaConfig | None = None,
    ) -> None:
        self._engine = engine
        self._approvals = approvals
        self._approvers = approvers
        self._language = str(templates.globals["language"])
        self._templates = templates
        self._base_url = base_url
        self._grafana = grafana or GrafanaConfig()

    async def answer(self, click: Click | PauseClick) -> dict[str, Any]:
        """Decide what `click` asks and say how it went, in Feishu's callback answer."""
        if isinstance(click, PauseClick):
            return await self.pause(click)
        async with self._engine.connect() as conn:
            item = await actions.proposal(conn, click.proposal_id)
        if item is None:
            return self.toast("error", outcome="not_found", message="")
        if len(click.hash_prefix) < HASH_PREFIX or not str(item["argv_hash"]).startswith(click.hash_prefix):
            log.warning("Feishu click by %s on proposal %d names another command", click.open_id, item["id"])
            return self.toast("error", refusal="changed")
        decision = await self._approvals.decide(
            click.proposal_id, click.approve, Actor(FEISHU, click.open_id), expected_hash=item["argv_hash"]
        )
        log.info("Feishu click by %s on proposal %d: %s", click.open_id, item["id"], decision.outcome)
        allowed = self._approvers.allows(FEISHU, click.open_id)
        answer = self.toast(
            _TOAST.get(decision.outcome, "error"),
            outcome=decision.outcome,
            message=decision.message,
            refusal=None if allowed else "not_approver",
            who=click.open_id,
        )
        if decision.took_effect:
            card = await self._updated_card(item, decision)
            if card is not None:
                answer["card"] = {"type": "raw", "data": json.loads(card)}
        return answer

    async def pause(self, click: PauseClick) -> dict[str, Any]:
        """The Pause button: automatic remediation paused, for an allow-listed approver only."""
        switched = await guardrails.switch(self._engine, self._approvals.config, True, FEISHU, click.open_id)
        log.info(
            "Feishu pause click by %s on incident %d: %s", click.open_id, click.incident_id, switched.outcome
        )
        kind = (
            "error"
            if switched.outcome == "refused"
            else "success"
            if switched.outcome == "paused"
            else "info"
        )
        return {"toast": {"type": kind, "content": say(switched.message, self._language)}}

    def toast(self, kind: str, **context: Any) -> dict[str, Any]:
        values = {"outcome": "refused", "message": "", "refusal": None, "who": "", **context}
        content = self._templates.get_template("feishu/toast.txt.j2").render(**values).strip()
        return {"toast": {"type": kind, "content": content}}

    async def _updated_card(self, item: Mapping[str, Any], decision: Decision) -> str | None:
        """The card re-rendered from the incident as it now stands, or None when that takes too long or fails: the
        decision stands either way, and the card is edited again when the action's result is announced."""
        try:
            return await asyncio.wait_for(self.current_card(item), RENDER_WITHIN)
        except TimeoutError:
            log.warning(
                "the card for proposal %d took over %.1fs to render; answered without it",
                item["id"],
                RENDER_WITHIN,
            )
        except (
            Exception
        ):  # the decision is made; a card that cannot be rendered must not turn it into an error
            log.exception(
                "the card for proposal %d could not be rendered after %s", item["id"], decision.outcome
            )
        return None

    async def current_card(self, item: Mapping[str, Any]) -> str | None:
        """The Feishu card of `item`'s incident now: its latest triage, with the proposals of the delivery `item`
        came from in their current states (and their executions)."""
        incident_id = item["incident_id"]
        async with self._engine.connect() as conn:
            incident = await incidents.get(conn, incident_id)
            triage = await incidents.latest_triage(conn, incident_id)
            proposals = (await actions.of_incident(conn, incident_id))["proposals"]
        if incident is None or triage is None:
            return None
        shown = [p for p in proposals if p["delivery_id"] == item["delivery_id"]]
        announcement = Announcement(
            "updated",
            incident,
            triage,
            f"{self._base_url}/incidents/{incident_id}",
            proposals=proposal_records(shown),
            approval_links=await self._approvals.links(self._base_url, shown),
            dashboard_url=dashboard_url(self._grafana, incident),
            pause_url=self._approvals.pause_url(self._base_url),
        )
        return Cards(self._templates).announcement(announcement)
