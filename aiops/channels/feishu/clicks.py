"""What a click on a Feishu card's button does, however it arrived (`POST /callbacks/feishu` or the long
connection): a `Press` for the decision path (aiops/channels/decisions.py) — allow-listed open_ids only
(`remediation.approvers.feishu`), bound to the command the card showed — answered within Feishu's 3 seconds with
a toast and, when the decision took effect, the card as it now stands. Feishu never re-sends a click, so one that
fails is simply clicked again.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from jinja2 import Environment

from aiops.channels.decisions import Choice, Decided, Decisions, Press
from aiops.channels.feishu.callback import Click, PauseClick
from aiops.channels.feishu.card import Cards
from aiops.i18n import say

log = logging.getLogger("aiops.channels.feishu")
FEISHU = "feishu"
_TOAST = {"approved": "success", "rejected": "success", "already": "info"}  # any other outcome: "error"
_SWITCH_TOAST = {"paused": "success", "refused": "error"}  # already: "info"


class FeishuClicks:
    """Answers card clicks through the decision path; one per Feishu app."""

    def __init__(self, decisions: Decisions, templates: Environment) -> None:
        self._decisions = decisions
        self._language = str(templates.globals["language"])
        self._templates = templates
        self._cards = Cards(templates)

    async def answer(self, click: Click | PauseClick) -> dict[str, Any]:
        """Decide what `click` asks and say how it went, in Feishu's callback answer."""
        if isinstance(click, PauseClick):
            paused = await self._decisions.decide(
                Press(FEISHU, click.open_id, "pause", incident_id=click.incident_id)
            )
            kind = _SWITCH_TOAST.get(paused.outcome, "info")
            return {"toast": {"type": kind, "content": say(paused.message, self._language)}}
        choice: Choice = "approve" if click.approve else "reject"
        press = Press(FEISHU, click.open_id, choice, click.proposal_id, click.hash_prefix)
        decided = await self._decisions.decide(press)
        answer = self._toast(decided, click.open_id)
        if decided.took_effect and decided.announcement is not None:
            card = self._card(decided)
            if card is not None:
                answer["card"] = {"type": "raw", "data": json.loads(card)}
        return answer

    def _toast(self, decided: Decided, who: str) -> dict[str, Any]:
        if decided.outcome == "not_found":
            return self.toast("error", outcome="not_found", message="")
        if decided.outcome == "changed":
            return self.toast("error", refusal="changed")
        return self.toast(
            _TOAST.get(decided.outcome, "error"),
            outcome=decided.outcome,
            message=decided.message,
            refusal=None if decided.allowed else "not_approver",
            who=who,
        )

    def toast(self, kind: str, **context: Any) -> dict[str, Any]:
        values = {"outcome": "refused", "message": "", "refusal": None, "who": "", **context}
        content = self._templates.get_template("feishu/toast.txt.j2").render(**values).strip()
        return {"toast": {"type": kind, "content": content}}

    def _card(self, decided: Decided) -> str | None:
        """The card as it now stands; None when it cannot be rendered: the decision stands either way, and the
        card is edited again when the action's result is announced."""
        assert decided.announcement is not None
        try:
            return self._cards.announcement(decided.announcement)
        except (
            Exception
        ):  # the decision is made; a card that cannot be rendered must not turn it into an error
            log.exception("the card could not be rendered after %s", decided.outcome)
            return None
