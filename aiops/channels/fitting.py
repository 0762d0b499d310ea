"""Fitting a message under its platform's byte limit: one ladder for every channel.

A channel renders its message at each `Cut` of its ladder, fullest first, and keeps the first whose body fits;
past the last, long strings are shortened (links excepted), and a channel may name a last resort that keeps only
the headline and links. The ladders differ per platform because their layouts do (a Feishu card has room for
more evidence than a robot's 20 KB); the fields of a cut, and how fitting goes, are the same everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiops.channels import Announcement

# Keys whose values are links: shortening them would leave a button or link that leads nowhere.
LINK_KEYS = frozenset({"default_url", "actionURL", "url", "incident_url", "dashboard_url"})
SHORTENED_LENGTHS = (1000, 300, 100)
T = TypeVar("T")


@dataclass(frozen=True)
class Cut:
    """How much of an announcement a message shows; `None` shows everything. `shortened` makes the message say
    that the incident page has the rest."""

    alerts: int | None = None
    evidence: int | None = None  # evidence items
    lines: int | None = None  # lines or series shown per evidence item
    steps: int | None = None  # next steps of the diagnosis
    proposals: int | None = None  # 0: only a pointer to the incident page, when even the commands do not fit
    text: int | None = None  # characters of each free text (summary, cause, impact)
    output: int = 20  # last lines of an execution's stdout and stderr
    shortened: bool = False


def context(
    announcement: Announcement, cut: Cut | None = None, mentions: re.Pattern[str] | None = None
) -> dict[str, Any]:
    """What every channel's templates render an announcement from: `a` (the announcement), `incident`, `triage`,
    `cut` (how much of it fits), and `mentions`: the on-call ids the platform can @mention (those `mentions`
    matches whole; none without a pattern)."""
    return {
        "a": announcement,
        "incident": announcement.incident,
        "triage": announcement.triage,
        "cut": cut,
        "mentions": [m for m in announcement.mentions if mentions is not None and mentions.fullmatch(m)],
    }


def dumps(message: Any) -> str:
    """The message as posted: compact, and UTF-8 rather than \\u escapes, which would triple Chinese text."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def size(body: str) -> int:
    return len(body.encode("utf-8"))


def shorten(value: Any, length: int) -> Any:
    """`value` with every string longer than `length` characters cut to it, except links."""
    if isinstance(value, dict):
        return {key: item if key in LINK_KEYS else shorten(item, length) for key, item in value.items()}
    if isinstance(value, list):
        return [shorten(item, length) for item in value]
    if isinstance(value, str) and len(value) > length:
        return value[: length - 1] + "…"
    return value


def line(text: str, limit: int) -> str:
    """`text` on one line of at most `limit` characters: a header or button label."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def fit(
    build: Callable[[Cut], T],
    ladder: Sequence[Cut],
    limit: int,
    *,
    encode: Callable[[T], str] = dumps,
    squeeze: Callable[[T, int], T] = shorten,
    lengths: Sequence[int] = SHORTENED_LENGTHS,
    last_resort: Cut | None = None,
) -> str:
    """The fullest rendering of `build` along `ladder` whose body is at most `limit` bytes. Past the ladder,
    the last cut's strings are squeezed to each of `lengths`; then `last_resort`, squeezed, whether it fits or
    not (a platform refusing it says so, and the outbox records why)."""
    for cut in ladder:
        body = encode(build(cut))
        if size(body) <= limit:
            return body
    squeezed = build(ladder[-1])
    for length in lengths:
        body = encode(squeeze(squeezed, length))
        if size(body) <= limit:
            return body
    if last_resort is not None:
        body = encode(squeeze(build(last_resort), lengths[-1]))
    return body
