"""Announcements as Feishu interactive cards, card JSON 2.0.

The texts are the templates in aiops/templates/feishu/; this module only lays them out: a header coloured by
severity, markdown for the incident and its evidence, and for each action waiting for an approval its exact
command (plain text, shown as is) with Approve and Reject buttons. A button's callback value names the proposal and
the first 16 hex digits of its argv hash, so a click decides only the command the card showed.

Every value that did not come from this service (labels, titles, the model's text) is written into markdown through
`md`/`mdtext`, which turn markdown syntax, `<at>` mentions and `<font>` tags into HTML entities Feishu shows as
text. A card stays under `MAX_BYTES`: evidence is cut first, then the other long texts, and the card says so.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jinja2 import Environment

from aiops.channels import Announcement, Digest, fitting
from aiops.channels.decisions import HASH_PREFIX
from aiops.channels.feishu.markdown import md, mdtext
from aiops.channels.fitting import Cut, dumps, fit, shorten, size
from aiops.channels.records import ProposalRecord

MAX_BYTES = 30_000  # Feishu refuses cards over 30 KB; kept a little under, whichever K Feishu means
PAUSE = "pause"  # the decision a Pause button sends
BUTTON_TEXT = 100  # characters Feishu allows on a button
TITLE = 200  # characters kept of a header title
COLOURS = {"critical": "red", "error": "red", "warning": "orange", "info": "blue"}
ACTION_COLOURS = {
    "succeeded": "green",
    "failed": "red",
    "unknown": "red",
    "rejected": "grey",
    "expired": "grey",
    "moot": "grey",
}
VERIFIED_COLOURS = {"recovered": "green", "not_recovered": "red", "unknown": "orange"}
Element = dict[str, Any]
MENTION = re.compile(r"[A-Za-z0-9_-]{1,64}")  # an open_id, user_id or "all"


def clip(value: object, limit: int | None) -> str:
    """`value` as text of at most `limit` characters (all of it for None), marked when cut."""
    text = str(value)
    return text if limit is None or len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def link(url: object, text: str) -> str:
    """A markdown link to an http(s) URL, or the text alone when the URL is anything else."""
    target = str(url)
    if not target.startswith(("https://", "http://")):
        return md(text)
    return f"[{md(text)}]({quoted(target)})"


def quoted(url: str) -> str:
    """`url` with anything that could end a link or break out of it (spaces, brackets, quotes) percent-encoded."""
    return urllib.parse.quote(url, safe=":/?#=&%@+,;~!$*.-_")


# Cards, fullest first: evidence goes first, then the other long texts, then the commands.
CUTS = (
    Cut(),
    Cut(lines=5, shortened=True),
    Cut(evidence=5, lines=3, output=10, shortened=True),
    Cut(evidence=3, lines=1, output=5, shortened=True),
    Cut(evidence=0, output=5, shortened=True),
    Cut(evidence=0, alerts=5, steps=3, text=1000, output=3, shortened=True),
    Cut(evidence=0, alerts=1, steps=0, text=200, output=0, shortened=True),
    Cut(evidence=0, alerts=1, steps=0, text=200, output=0, proposals=0, shortened=True),
)


class Cards:
    """Renders announcements and digests as card JSON text, using the `feishu/` templates of `templates`."""

    def __init__(self, templates: Environment) -> None:
        self._templates = templates
        self._t: Callable[..., str] = templates.globals["t"]  # type: ignore[assignment]

    def announcement(self, announcement: Announcement) -> str:
        return fit(lambda cut: self._card(announcement, cut), CUTS, MAX_BYTES, lengths=(200,))

    def digest(self, digest: Digest) -> str:
        for shown in (50, 10, 3):
            body = dumps(self._digest(digest, shown))
            if size(body) <= MAX_BYTES:
                return body
        return dumps(shorten(self._digest(digest, 3), 200))

    def _digest(self, digest: Digest, shown: int) -> Element:
        content = self._text("digest.md.j2", digest=digest, shown=shown)
        colours = {COLOURS.get(entry.severity, "grey") for entry in digest.entries}
        worst = next((c for c in ("red", "orange") if c in colours), "blue")
        return card(self._text("digest_title.txt.j2", digest=digest), worst, [markdown(content)])

    def _card(self, announcement: Announcement, cut: Cut) -> Element:
        context = fitting.context(announcement, cut, MENTION)
        elements = [markdown(self._text(f"{announcement.purpose}.md.j2", **context))]
        if announcement.purpose == "action" and announcement.reported is not None:
            elements.append(plain(self._text("action.txt.j2", **context)))
        if announcement.purpose in ("opened", "updated") and announcement.triage is not None:
            evidence = self._text("evidence.md.j2", **context)
            if evidence:
                elements += [{"tag": "hr"}, markdown(evidence)]
        elements += self._proposals(announcement, cut, context)
        title = self._text("title.txt.j2", **context)
        return card(title, colour(announcement), elements)

    def _proposals(self, announcement: Announcement, cut: Cut, context: Mapping[str, Any]) -> list[Element]:
        proposals = list(announcement.proposals)
        if not proposals:
            return []
        if cut.proposals == 0:
            return [
                {"tag": "hr"},
                markdown(self._text("proposals_omitted.md.j2", **context, count=len(proposals))),
            ]
        elements: list[Element] = [{"tag": "hr"}]
        for proposal in proposals:
            elements.append(plain(self._text("proposal.txt.j2", **context, p=proposal)))
            if proposal.state == "pending":
                elements.append(self._buttons(proposal))
                web = announcement.approval_links.get(proposal.id)
                if web:
                    elements.append(markdown(link(web, self._t("decide_on_web"))))
        if announcement.pause_url is not None:
            elements.append(self._pause(announcement.incident.id))
        return elements

    def _pause(self, incident_id: int) -> Element:
        """The Pause button of automatic remediation (`remediation.mode: auto`), for approvers."""
        pause = button(self._t("pause_button"), "danger", {"decision": PAUSE, "incident": incident_id})
        pause["confirm"] = confirm(self._t("pause_confirm_title"), self._t("pause_confirm_text"))
        return pause

    def _buttons(self, proposal: ProposalRecord) -> Element:
        """Approve and Reject side by side, each confirming the exact command before it calls back."""
        names = {"action": proposal.action_id, "host": proposal.host or "—"}
        command = self._text("command.txt.j2", p=proposal)
        approve = button(self._t("feishu_approve"), "primary_filled", _value(proposal, "approve"))
        approve["confirm"] = confirm(self._t("feishu_confirm_approve", **names), command)
        reject = button(self._t("feishu_reject"), "danger", _value(proposal, "reject"))
        reject["confirm"] = confirm(self._t("feishu_confirm_reject", **names), command)
        return {
            "tag": "column_set",
            "flex_mode": "flow",
            "columns": [column(approve), column(reject)],
        }

    def _text(self, name: str, **context: Any) -> str:
        template = self._templates.get_template(f"feishu/{name}")
        return template.render(md=md, mdtext=mdtext, link=link, clip=clip, **context).strip()


def card(title: str, template: str, elements: Sequence[Element]) -> Element:
    flat = " ".join(title.split())
    header = {"title": {"tag": "plain_text", "content": flat[:TITLE]}, "template": template}
    return {
        "schema": "2.0",
        "config": {"update_multi": True},
        "header": header,
        "body": {"elements": list(elements)},
    }


def markdown(content: str) -> Element:
    return {"tag": "markdown", "content": content}


def plain(content: str) -> Element:
    """Text shown exactly as written: no markdown, no mentions (a command must read as what will run)."""
    return {"tag": "div", "text": {"tag": "plain_text", "content": content}}


def button(text: str, kind: str, value: Mapping[str, Any]) -> Element:
    label = " ".join(text.split())[:BUTTON_TEXT]
    return {
        "tag": "button",
        "type": kind,
        "text": {"tag": "plain_text", "content": label},
        "behaviors": [{"type": "callback", "value": dict(value)}],
    }


def confirm(title: str, text: str) -> Element:
    return {"title": {"tag": "plain_text", "content": title}, "text": {"tag": "plain_text", "content": text}}


def column(*elements: Element) -> Element:
    return {"tag": "column", "width": "auto", "elements": list(elements)}


def colour(announcement: Announcement) -> str:
    if announcement.purpose == "resolved":
        return "green"
    reported = announcement.reported
    if announcement.purpose == "action" and reported is not None:
        verification = reported.verification
        if verification is not None and verification.outcome:
            return VERIFIED_COLOURS.get(verification.outcome, "blue")
        return ACTION_COLOURS.get(reported.state, "blue")
    return COLOURS.get(announcement.incident.severity, "grey")


def _value(proposal: ProposalRecord, decision: str) -> dict[str, Any]:
    """What a click sends back: which proposal, which decision, and which command (argv hash prefix)."""
    return {
        "proposal": proposal.id,
        "decision": decision,
        "hash": proposal.argv_hash[:HASH_PREFIX],
    }
