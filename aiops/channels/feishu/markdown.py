"""Feishu's card markdown (lark_md, the `markdown` component of card JSON 2.0), and how text that did not come from
this service is kept out of its markup: one set of escapes for the app's cards and the group robot's alike.

Card markdown shows a character as itself only when it is written as a numeric HTML entity (the rich-text
component's "特殊字符"): `&` (else `&lt;` in a label would be read as an entity), `<` `>` (tags: `<at>` mentions,
`<font>`), `* ~ _ $` (emphasis, strike-through, formulas), `[ ]` (links), `` ` `` (code), `#` (headings), `|`
(tables) and the backslash.
"""

from __future__ import annotations

_ESCAPES = str.maketrans({char: f"&#{ord(char)};" for char in "&<>*~[]`_\\#$|"})


def md(value: object) -> str:
    """A value shown as text on one line of card markdown: no formatting, link, mention or line break of its own."""
    return " ".join(str(value).split()).translate(_ESCAPES)


def mdtext(value: object) -> str:
    """Multi-line text shown as text in card markdown; its line breaks are kept, blank lines dropped."""
    return "\n".join(md(part) for part in str(value).splitlines() if part.strip())
