"""WeCom's markdown (the app's and the group robot's `markdown` message), and how user text is kept out of its
markup.

The dialect (WeCom's "markdown类型", 90236 and 91770) has headings (`#`), bold (`**`) and italics (`*`), links
(`[text](url)`), inline code (`` ` ``), quotes (`>`), `<font color="info|comment|warning">` and `<@userid>`
mentions. WeCom documents no escape, so a backslash cannot be relied on to stop markup. Instead each markup character
in user text is replaced by its full-width form (`＜` for `<`, `＊` for `*`…). A reader still sees it, but it cannot open
a tag, a mention, a link or emphasis. Being one character each, the replacements cannot be split by a cut either.
`_` and `~` are left alone: this dialect has no `_` emphasis or strike-through, and metric names are full of `_`.
This is the `markdown` type only: `markdown_v2` adds lists, tables (`|`), rules and images, and would need more.

Limits are UTF-8 bytes (a CJK character is three), not characters: 4,096 for the robot, 2,048 for the app.
"""

from __future__ import annotations

import re

_FULL_WIDTH = str.maketrans({char: chr(ord(char) + 0xFEE0) for char in "<>*#`[]"})
# Control characters but tab and newline, and the bidirectional overrides that make text read other than it is.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
ELLIPSIS = "…"


def escape(text: object) -> str:
    """`text` as markdown that shows it literally, line breaks kept."""
    return _INVISIBLE.sub("", str(text).replace("\r\n", "\n")).translate(_FULL_WIDTH)


def inline(text: object) -> str:
    """`text` escaped on one line: a title, a label, a table cell."""
    return " ".join(escape(text).split())


def size(text: str) -> int:
    return len(text.encode("utf-8"))


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` UTF-8 bytes, ending in "…" when cut. Never splits a character, nor one of the
    message's own tags (`<font …>`, `<@…>`): escaped user text has no `<` left, so any `<` is markup."""
    if size(text) <= limit:
        return text
    room = limit - size(ELLIPSIS)
    if room < 0:
        return ""
    head = text.encode("utf-8")[:room].decode("utf-8", "ignore")
    if head.rfind("<") > head.rfind(">"):
        head = head[: head.rfind("<")]
    return head + ELLIPSIS
