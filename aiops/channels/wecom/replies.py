"""Chat replies as the app's markdown messages, sent to the person who wrote to it.

A reply is the answer's paragraphs, then "what I ran" as a short quoted list (WeCom's markdown has nothing that
folds), then a link to the incident's page. It must fit the app's 2,048 bytes of markdown (`api.MARKDOWN_LIMIT`):
the list loses its last entries first, then the answer is cut (`markdown.cut`, which keeps the tags whole), the
link always kept. Everything not aiops's own goes through the same escaping as the robot's messages
(`markdown.escape`, `markdown.inline`). A direct message needs no @mention: WeCom's app markdown has none anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jinja2 import Environment

from aiops.channels.wecom import markdown
from aiops.channels.wecom.api import MARKDOWN_LIMIT
from aiops.chat import Ran, Reply


class Replies:
    """Renders `Reply`s from the templates `wecom/reply*.md.j2`."""

    def __init__(self, templates: Environment, limit: int = MARKDOWN_LIMIT) -> None:
        self._templates = templates
        self._limit = limit

    def render(self, reply: Reply) -> str:
        """The reply's markdown within the limit: the ran list shortened first, then the answer cut."""
        answer = self._text("reply_answer.md.j2", reply=reply)
        for shown in range(len(reply.ran), -1, -1):
            body = self._whole(reply, answer, reply.ran[:shown])
            if markdown.size(body) <= self._limit:
                return body
        room = self._limit - markdown.size(self._whole(reply, "", ()))
        while True:  # the separator the empty answer did not need, and a cut's "…", may still not fit
            body = self._whole(reply, markdown.cut(answer, room), ())
            if markdown.size(body) <= self._limit or room <= 0:
                return body
            room -= markdown.size(body) - self._limit

    def _whole(self, reply: Reply, answer: str, ran: Sequence[Ran]) -> str:
        return self._text("reply.md.j2", reply=reply, answer=answer, ran=ran)

    def _text(self, name: str, **context: Any) -> str:
        template = self._templates.get_template(f"wecom/{name}")
        return template.render(md=markdown.inline, mdtext=markdown.escape, **context).strip()
