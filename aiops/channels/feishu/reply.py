"""aiops's answers in Feishu chat, as card JSON 2.0 replying to the question.

The texts are the `feishu/reply*.j2` templates: the answer as card markdown (the person asking @mentioned when the
answer names them), then what was run to find it out in a collapsed `collapsible_panel`, and a button to the
incident's page. Everything in a `Reply` — the model's answer, queries, their results — is written through
`md`/`mdtext`, as cards write what did not come from this service. A reply stays under `MAX_BYTES`: the list of
what was run is cut first, then the answer, and the card says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment

from aiops.channels.feishu.card import MAX_BYTES, MENTION, Element, button, clip, markdown, quoted
from aiops.channels.feishu.markdown import md, mdtext
from aiops.channels.fitting import dumps, shorten, size
from aiops.chat import Reply
from aiops.i18n import say


@dataclass(frozen=True)
class Shown:
    """How much of a reply a card shows: `ran` entries of what was run, `text` characters of the answer (None:
    all of it)."""

    ran: int | None = None
    text: int | None = None


# Fullest first: what was run goes first, then the answer is shortened.
LADDER = (
    Shown(),
    Shown(ran=10),
    Shown(ran=3),
    Shown(ran=0),
    Shown(ran=0, text=8000),
    Shown(ran=0, text=2000),
)
LAST_RESORT = Shown(ran=0, text=500)


class Replies:
    """Renders `Reply`s as card JSON text, using the `feishu/reply*.j2` templates of `templates`."""

    def __init__(self, templates: Environment) -> None:
        self._templates = templates
        self._language = str(templates.globals["language"])
        self._t: Callable[..., str] = templates.globals["t"]  # type: ignore[assignment]

    def reply(self, reply: Reply) -> str:
        for shown in LADDER:
            body = dumps(self._card(reply, shown))
            if size(body) <= MAX_BYTES:
                return body
        return dumps(shorten(self._card(reply, LAST_RESORT), 200))

    def _card(self, reply: Reply, shown: Shown) -> Element:
        answer = "\n".join(say(line, self._language) for line in reply.lines)
        mention = _mention(reply.to_user)
        text = self._text(
            "reply.md.j2", answer=clip(answer, shown.text), mention=mention, cut=shown != Shown()
        )
        said = markdown(text)
        if reply.refusal:
            said["text_size"] = "notation"  # a refusal is said quietly
        elements = [said]
        if reply.ran:
            elements.append(self._ran(reply, shown))
        if reply.incident_url and reply.incident_url.startswith(("https://", "http://")):
            elements.append(_open(self._t("feishu_open_incident"), reply.incident_url))
        return {"schema": "2.0", "config": {"update_multi": True}, "body": {"elements": elements}}

    def _ran(self, reply: Reply, shown: Shown) -> Element:
        """What was run, in a panel shown collapsed: the answer comes first, the working on request."""
        ran = list(reply.ran)[: shown.ran]
        content = self._text("reply_ran.md.j2", ran=ran, omitted=len(reply.ran) - len(ran))
        title = self._t("feishu_reply_ran", count=len(reply.ran))
        return {
            "tag": "collapsible_panel",
            "expanded": False,
            "header": {"title": {"tag": "plain_text", "content": title}},
            "elements": [markdown(content)],
        }

    def _text(self, name: str, **context: Any) -> str:
        template = self._templates.get_template(f"feishu/{name}")
        return template.render(md=md, mdtext=mdtext, clip=clip, **context).strip()


def _mention(user: str | None) -> str | None:
    """The asker's open_id to @mention; never "all", which a configured mention may be but a person is not."""
    return user if user and user != "all" and MENTION.fullmatch(user) else None


def _open(text: str, url: str) -> Element:
    """A button opening `url` in the browser."""
    opened = button(text, "default", {})
    opened["behaviors"] = [{"type": "open_url", "default_url": quoted(url)}]
    return opened
