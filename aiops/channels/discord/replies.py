"""Chat replies as Discord messages: one embed, whose description is the answer and whose fields are what aiops
ran to find out (a field per query: the tool, then the query and its result), titled with the incident and
linking to its page; the asker is mentioned in the content, and only they are pinged (`allowed_mentions`).

Within Discord's limits (`api.check_message`): the description is cut to 4,096, a field to 256/1,024, and the
fields past 25, or past the 6,000 all embeds may hold, are left out (the footer says how many), before anything of
the answer is. Everything not aiops's own is escaped as the cards escape it (`markdown.escape`, `markdown.inline`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, cast

from jinja2 import Environment

from aiops.channels.discord import markdown
from aiops.channels.discord.api import (
    EMBED_LIMITS,
    EMBEDS_TOTAL,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    FIELDS_LIMIT,
    message,
)
from aiops.chat import Ran, Reply

_SNOWFLAKE = re.compile(r"[0-9]{15,21}")
_BLUE, _GREY = 0x3A8DF2, 0x99AAB5


class Replies:
    """Renders `Reply`s from the templates `discord/reply*.md.j2`."""

    def __init__(self, templates: Environment) -> None:
        self._templates = templates
        self._t = cast(Callable[..., str], templates.globals["t"])

    def render(self, reply: Reply) -> str:
        embed: dict[str, Any] = {
            "description": markdown.cut(self._text("reply.md.j2", reply=reply), EMBED_LIMITS["description"]),
            "color": _GREY if reply.refusal else _BLUE,
        }
        if reply.incident_id is not None:
            title = self._t("discord_reply_incident", id=reply.incident_id)
            embed["title"] = markdown.cut(markdown.inline(title), EMBED_LIMITS["title"])
        if reply.incident_url:
            embed["url"] = reply.incident_url
        embed.update(self._fields(reply.ran, _size(embed)))
        users = [reply.to_user] if reply.to_user and _SNOWFLAKE.fullmatch(reply.to_user) else []
        body = message(" ".join(f"<@{user}>" for user in users), embeds=[embed], mention_users=users)
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    def _fields(self, ran: Sequence[Ran], used: int) -> dict[str, Any]:
        """The fields that fit beside what the embed holds already (`used` characters), and a footer saying how
        many did not."""
        room = EMBEDS_TOTAL - used - 100  # kept for the footer
        fields: list[dict[str, str]] = []
        for item in ran[:FIELDS_LIMIT]:
            field = self._field(item)
            room -= markdown.length(field["name"]) + markdown.length(field["value"])
            if room < 0:
                break
            fields.append(field)
        if not fields:
            return {} if not ran else {"footer": {"text": self._t("discord_reply_ran_more", count=len(ran))}}
        shown: dict[str, Any] = {"fields": fields}
        if len(ran) > len(fields):
            shown["footer"] = {"text": self._t("discord_reply_ran_more", count=len(ran) - len(fields))}
        return shown

    def _field(self, item: Ran) -> dict[str, str]:
        name = self._t("discord_reply_ran", tool=markdown.inline(item.tool))
        value = self._text("reply_ran.md.j2", r=item) or "—"
        return {
            "name": markdown.cut(name, FIELD_NAME_LIMIT),
            "value": markdown.cut(value, FIELD_VALUE_LIMIT),
        }

    def _text(self, name: str, **context: Any) -> str:
        template = self._templates.get_template(f"discord/{name}")
        return template.render(md=markdown.inline, mdtext=markdown.escape, **context).strip()


def _size(embed: dict[str, Any]) -> int:
    return sum(markdown.length(str(embed.get(name) or "")) for name in ("title", "description"))
