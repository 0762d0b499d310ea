"""Discord's markdown, and how user text is kept out of its markup and its mentions.

Discord honours a backslash before any markdown character. So user text has `\\ * _ ~ ` | [ ] <` backslash-escaped
everywhere, and `# - > 1.` at the start of a line, where they make headings, lists, quotes and subtext. Mentions
(`@everyone`, `@here`, `<@id>`, `<@&role>`, `<#channel>`, `</command:id>`) also get a zero-width space after their
`@`, `#` or `/`, as discord.py's `escape_mentions` does: they show as written but mention no one, even where
`allowed_mentions` is forgotten. Every message aiops sends sets `allowed_mentions` anyway (`api.message`).

Limits are in characters: 2,000 for `content`, 4,096 for an embed's description. They are counted here in UTF-16
code units, which is never less than the characters however Discord counts them (an emoji outside the BMP is two).
"""

from __future__ import annotations

import re

_ANYWHERE = re.compile(r"([\\*_~`|\[\]<])")
_LINE_START = re.compile(r"^(\s*)(#|-|>|\d+\.)", re.MULTILINE)
_MENTION = re.compile(r"@(?=everyone|here|[!&]?\d)|(?<=<)[#/](?=\w)")
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
ELLIPSIS = "…"
ZERO_WIDTH_SPACE = "\u200b"


def escape(text: object) -> str:
    """`text` as Discord markdown that shows it literally, line breaks kept."""
    plain = _INVISIBLE.sub("", str(text).replace("\r\n", "\n"))
    escaped = _LINE_START.sub(_escape_line_start, _ANYWHERE.sub(r"\\\1", plain))
    return _MENTION.sub(lambda match: match.group(0) + ZERO_WIDTH_SPACE, escaped)


def _escape_line_start(match: re.Match[str]) -> str:
    indent, marker = match.group(1), match.group(2)
    return indent + (marker[:-1] + "\\." if marker.endswith(".") else "\\" + marker)


def inline(text: object) -> str:
    """`text` escaped on one line: a title, a field, a button label (labels are not markdown: use `line`)."""
    return " ".join(escape(text).split())


def line(text: object, limit: int) -> str:
    """`text` on one line of at most `limit`, unescaped: for button labels and embed titles' plain parts."""
    return cut(" ".join(str(text).split()), limit)


def length(text: str) -> int:
    """Discord's length of `text`, counted so as never to fall short: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` (see `length`), ending in "…" when cut; never leaves an escaping backslash
    without the character it escapes."""
    if length(text) <= limit:
        return text
    if limit < 1:
        return ""
    room, kept, end = limit - 1, 0, 0
    for end, char in enumerate(text):  # noqa: B007 (`end` is where the loop stopped)
        kept += 2 if ord(char) > 0xFFFF else 1
        if kept > room:
            break
    head = text[:end]
    trailing = len(head) - len(head.rstrip("\\"))
    return (head[:-1] if trailing % 2 else head) + ELLIPSIS
