"""The card data of a DingTalk card: the template's variables (`cardParamMap`, strings only) from one announcement.

An announcement that edits a card carries only the keys it changes — the card is updated by key — so a resolution
keeps the evidence on the card, and an action's result leaves the diagnosis in place. A message body is the JSON
`{"cardData": {"cardParamMap": {…}}, "atUserIds": {…}}`; the Open API call adds the rest (openapi.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from jinja2 import Environment

from aiops.channels import Announcement, Digest, digest_title, fitting
from aiops.channels.decisions import HASH_PREFIX
from aiops.channels.dingtalk.markdown import md, mdtext
from aiops.channels.fitting import LINK_KEYS, Cut, dumps, fit
from aiops.channels.records import ProposalRecord
from aiops.models import Text

# Bytes of a message body. DingTalk does not document a limit for card data; the service keeps every chat message
# under 20 KB, which DingTalk's robots also impose.
MAX_BODY = 20_000
# CommonMark's backslash escapes, for text that must show as text in the card's markdown blocks.
_TRUE, _FALSE = "true", "false"


# Cards, fullest first: the first is what a reader needs at a glance; the later ones drop evidence, then next
# steps, then alerts, until the card data fits.
DETAILS = (
    Cut(alerts=10, evidence=5, lines=3, output=15),
    Cut(alerts=10, evidence=3, lines=1, output=5, text=4000, shortened=True),
    Cut(alerts=10, evidence=0, lines=0, output=0, steps=3, text=2000, shortened=True),
    Cut(alerts=3, evidence=0, lines=0, output=0, steps=0, text=1000, shortened=True),
    Cut(alerts=1, evidence=0, lines=0, output=0, steps=0, text=500, shortened=True),
)
TITLE = 200  # characters of the card's title, on one line


def clip(value: object, limit: int | None) -> str:
    """`value` as text of at most `limit` characters (all of it for None), marked when cut."""
    text = str(value)
    return text if limit is None or len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def line(value: str, limit: int) -> str:
    """`value` on one line of at most `limit` characters: a title."""
    return clip(" ".join(value.split()), limit)


class Cards:
    """Renders announcements, digests and decisions into card data from the templates under `dingtalk/`."""

    def __init__(self, templates: Environment) -> None:
        self._templates = templates
        self._t = cast(Callable[..., str], templates.globals["t"])
        self._shell: Callable[[Any], str] = templates.filters["shell"]
        self._when: Callable[[Any], str] = templates.filters["when"]
        self._say: Callable[[Any], str] = templates.filters["say"]

    def announcement(self, announcement: Announcement) -> str:
        mentions = {staff: staff for staff in announcement.mentions}
        return _fit(lambda detail: self._params(announcement, detail), mentions)

    def digest(self, digest: Digest) -> str:
        def params(detail: Cut) -> dict[str, str]:
            return {
                "title": digest_title(self._t, digest, "dingtalk_digest_title"),
                "severity": _worst(entry.severity for entry in digest.entries),
                "status": "firing",
                "status_text": self._t("dingtalk_status_firing"),
                "summary": self._text("digest.md.j2", digest=digest, detail=detail),
                "evidence": "",
                "runbook": "",
                "incident_url": f"{digest.base_url}/",
                "incident_link_text": self._t("robot_all_incidents"),
                "dashboard_url": "",
                "dashboard_link_text": "",
                "proposals": "[]",
                "actions_open": _FALSE,
                "pause_open": _FALSE,
                "last_action": "",
            }

        return _fit(params, {})

    def decision(
        self, outcome: str, proposal: ProposalRecord, proposals: Sequence[ProposalRecord], who: str
    ) -> str:
        """The keys a decision changes: every proposal's state (the buttons go with the pending state) and, when
        the decision took effect, who decided what."""
        params = self._proposals(proposals)
        if outcome in ("approved", "rejected"):
            params["last_action"] = self._text("decision.md.j2", outcome=outcome, p=proposal, who=who)
        return _body(params, {})

    def notice(self, outcome: str, who: str, reason: Text) -> str:
        return self._t(f"dingtalk_notice_{outcome}", who=who, reason=self._say(reason))

    def _params(self, announcement: Announcement, detail: Cut) -> dict[str, str]:
        context = {**fitting.context(announcement), "detail": detail}
        link = {
            "incident_id": str(announcement.incident.id),
            "incident_url": announcement.incident_url,
            "incident_link_text": self._t("dingtalk_open_incident"),
            # Empty without grafana.url: the template shows the button only when there is a link.
            "dashboard_url": announcement.dashboard_url or "",
            "dashboard_link_text": self._t("grafana_dashboard") if announcement.dashboard_url else "",
        }
        if announcement.purpose == "action":
            return {**link, "last_action": self._text("action.md.j2", **context, p=announcement.reported)}
        header = {
            **link,
            "title": line(self._text("title.txt.j2", **context), TITLE),
            "severity": announcement.incident.severity,
        }
        if announcement.purpose == "resolved" or announcement.triage is None:
            return {**header, **self._resolution(context)}
        return {**header, **self._triage(announcement, context)}

    def _resolution(self, context: Mapping[str, Any]) -> dict[str, str]:
        return {
            "status": "resolved",
            "status_text": self._t("dingtalk_status_resolved"),
            "summary": self._text("resolved.md.j2", **context),
            "actions_open": _FALSE,  # what still waited for an approval is moot now
        }

    def _triage(self, announcement: Announcement, context: Mapping[str, Any]) -> dict[str, str]:
        params = {
            "status": "firing",
            "status_text": self._t("dingtalk_status_firing"),
            "summary": self._text("summary.md.j2", **context),
            "evidence": self._text("evidence.md.j2", **context),
            "runbook": self._text("runbook.md.j2", **context),
            **self._proposals(announcement.proposals),
            # The template's Pause button (its callback sends decision "pause" and incident_id) shows on "true".
            "pause_open": _TRUE if announcement.pause_url is not None else _FALSE,
        }
        if announcement.purpose == "opened":
            params["last_action"] = ""
        return params

    def _proposals(self, proposals: Sequence[ProposalRecord]) -> dict[str, str]:
        items = [self._proposal(item) for item in proposals]
        pending = any(item["pending"] == _TRUE for item in items)
        return {"proposals": dumps(items), "actions_open": _TRUE if pending else _FALSE}

    def _proposal(self, p: ProposalRecord) -> dict[str, str]:
        """One proposal as the template's loop sees it; `proposal_id` and `hash` are what its buttons send: the
        hash binds a click to the command the card showed."""
        pending = p.state == "pending"
        return {
            "id": str(p.id),
            "proposal_id": str(p.id),
            "hash": p.argv_hash[:HASH_PREFIX],
            "action": p.action_id,
            "host": p.host or "",
            "command": self._shell(p.argv),
            "risk": p.risk,
            "state": p.state,
            "state_text": self._t(f"approval_state_{p.state}"),
            "expires": self._t("dingtalk_expires", until=self._when(p.expires_at)) if pending else "",
            "pending": _TRUE if pending else _FALSE,
            "text": self._text("proposal.md.j2", p=p),
        }

    def _text(self, template: str, **context: Any) -> str:
        found = self._templates.get_template(f"dingtalk/{template}")
        return found.render(md=md, mdtext=mdtext, clip=clip, **context).strip()


def _fit(build: Callable[[Cut], dict[str, str]], mentions: Mapping[str, str]) -> str:
    """The fullest rendering whose body is at most MAX_BODY bytes (see aiops/channels/fitting.py)."""
    return fit(build, DETAILS, MAX_BODY, encode=lambda params: _body(params, mentions), squeeze=_shorten)


def _body(params: Mapping[str, str], mentions: Mapping[str, str]) -> str:
    message: dict[str, Any] = {"cardData": {"cardParamMap": dict(params)}}
    if mentions:
        message["atUserIds"] = dict(mentions)
    return dumps(message)


def _shorten(params: Mapping[str, str], length: int) -> dict[str, str]:
    """Each value cut to `length` characters, except links; the proposals (JSON) lose their markdown text."""
    shortened: dict[str, str] = {}
    for key, value in params.items():
        if key == "proposals":
            items = [{**item, "text": ""} for item in json.loads(value)]
            shortened[key] = dumps(items)
        elif key in LINK_KEYS or len(value) <= length:
            shortened[key] = value
        else:
            shortened[key] = value[: length - 1] + "…"
    return shortened


def _worst(severities: Any) -> str:
    order = ("critical", "error", "warning", "info")
    found = [s for s in severities if s in order]
    return min(found, key=order.index) if found else "none"
