"""DingTalk's markdown (the app card's markdown blocks and the group robot's `markdown` and `actionCard`
messages), and how text that did not come from this service is kept out of its markup: one set of escapes for both.

DingTalk's markdown shows these characters as text only when escaped with a backslash: `\\ ` `` ` `` `* _` (code,
emphasis), `[ ]` (links), `< >` (tags), `#` (headings), `|` (tables), `~` (strike-through).
"""

from __future__ import annotations

_ESCAPES = str.maketrans({char: "\\" + char for char in "\\`*_[]<>#|~"})


def md(value: object) -> str:
    """A value shown as text, on one line: no formatting, link or line break of its own."""
    return " ".join(str(value).split()).translate(_ESCAPES)


def mdtext(value: object) -> str:
    """Multi-line text shown as text, its line breaks kept (a card's markdown block)."""
    return "\n".join(md(part) for part in str(value).splitlines())


def paragraphs(value: object) -> str:
    """Multi-line text shown as text, each line its own paragraph: a robot's markdown joins single line breaks."""
    return "\n\n".join(md(part) for part in str(value).splitlines())
