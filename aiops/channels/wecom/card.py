"""Announcements as WeCom `button_interaction` template cards (the self-built app's channel).

A card's text fields are plain text, not markdown, so nothing in them can become markup. They are cut to the
lengths WeCom recommends ("建议不超过", not enforced; 发送应用消息 → 模板卡片, 90236, as SDKs quote it): a title of 36
characters, its description 44, the subtitle 112, a row's key 5 and value 26 (the group robot's page gives 26 and 30
for the title and description).

Each pending proposal gets a row and an Approve and a Reject button, whose keys name the proposal and the first 16
hex digits of its argv hash, so a click decides only the command the card showed; with automatic remediation, a
Pause button. A card holds at most 6 buttons: the proposals past what fits are approved on the web page their row
links to. A card without a pending proposal keeps one button, a link to the incident page.

The body is the card without its `task_id`, which `channel.WeComChannel.send` gives it: a task_id may be used once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, cast

from jinja2 import Environment

from aiops.channels import Announcement, Digest, digest_title, fitting
from aiops.channels.decisions import HASH_PREFIX, Button
from aiops.channels.records import ProposalRecord
from aiops.channels.wecom.api import BUTTONS_LIMIT
from aiops.channels.wecom.api import Button as CardButton

TITLE, DESC, SUBTITLE, KEYNAME, VALUE = 36, 44, 112, 5, 26  # characters WeCom recommends for each field
ROWS = 6  # horizontal_content_list items
_STYLES = {"approve": 1, "reject": 3, "pause": 4, "link": 2}  # WeCom's button colours


def clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Cards:
    """Renders announcements and digests as template card JSON, from the templates under `wecom/`."""

    def __init__(self, templates: Environment) -> None:
        self._templates = templates
        self._t = cast(Callable[..., str], templates.globals["t"])

    def announcement(self, announcement: Announcement) -> str:
        context = fitting.context(announcement)
        proposals = [p for p in announcement.proposals if p.state == "pending"]
        room = (BUTTONS_LIMIT - (announcement.pause_url is not None)) // 2
        buttons = [b for p in proposals[:room] for b in self._decision_buttons(p)]
        if announcement.pause_url is not None and announcement.proposals:
            pause = Button("pause", incident_id=announcement.incident.id)
            buttons.append(CardButton(self._t("pause_button"), pause.text(), _STYLES["pause"]))
        # Every proposal of the card, pending first: once decided, a row says how (the buttons are gone).
        shown = proposals + [p for p in announcement.proposals if p.state != "pending"]
        rows = [self._row(p, announcement.approval_links.get(p.id)) for p in shown[: ROWS - 1]]
        rows.append(_link_row(self._t("incident"), f"#{announcement.incident.id}", announcement.incident_url))
        return _dumps(
            self._card(
                self._text("title.txt.j2", **context),
                self._text("desc.txt.j2", **context),
                self._text("summary.txt.j2", **context),
                rows,
                buttons or [self._incident_button(announcement.incident_url)],
                announcement.incident_url,
            )
        )

    def digest(self, digest: Digest) -> str:
        counts = [f"{n} × {name} [{severity}]" for name, severity, n in digest.counts()]
        rows = [_link_row(f"#{e.incident_id}", e.title, e.url) for e in digest.entries[:ROWS]]
        link = f"{digest.base_url}/"
        button = CardButton(self._t("robot_all_incidents"), "all", _STYLES["link"], url=link)
        title = digest_title(self._t, digest)
        return _dumps(self._card(title, "", "\n".join(counts), rows, [button], link))

    def _card(
        self,
        title: str,
        desc: str,
        summary: str,
        rows: list[dict[str, Any]],
        buttons: Sequence[CardButton],
        url: str,
    ) -> dict[str, Any]:
        return {
            "card_type": "button_interaction",
            "main_title": {"title": clip(title, TITLE), "desc": clip(desc, DESC)},
            "sub_title_text": clip(summary, SUBTITLE),
            "horizontal_content_list": rows[:ROWS],
            "card_action": {"type": 1, "url": url},
            "button_list": [button.json() for button in buttons],
        }

    def _decision_buttons(self, proposal: ProposalRecord) -> list[CardButton]:
        digest = proposal.argv_hash[:HASH_PREFIX]
        approve = Button("approve", proposal.id, digest)
        reject = Button("reject", proposal.id, digest)
        return [
            CardButton(
                clip(f"{self._t('feishu_approve')} #{proposal.id}", 20), approve.text(), _STYLES["approve"]
            ),
            CardButton(
                clip(f"{self._t('feishu_reject')} #{proposal.id}", 20), reject.text(), _STYLES["reject"]
            ),
        ]

    def _row(self, proposal: ProposalRecord, link: str | None) -> dict[str, Any]:
        value = self._text("proposal.txt.j2", p=proposal)
        if link:
            return _link_row(f"#{proposal.id}", value, link)
        return {"keyname": clip(f"#{proposal.id}", KEYNAME), "value": clip(value, VALUE)}

    def _incident_button(self, url: str) -> CardButton:
        return CardButton(self._t("robot_open_incident"), "incident", _STYLES["link"], url=url)

    def _text(self, name: str, **context: Any) -> str:
        return self._templates.get_template(f"wecom/{name}").render(**context).strip()


def _link_row(keyname: str, value: str, url: str) -> dict[str, Any]:
    """A row whose value opens `url` (type 1)."""
    return {"keyname": clip(keyname, KEYNAME), "value": clip(value, VALUE), "type": 1, "url": url}


def _dumps(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False, separators=(",", ":"))
