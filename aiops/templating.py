"""The Jinja2 environment for pages, channel messages and the offline diagnosis, in zh-CN or en."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)

from aiops import i18n
from aiops.runbooks.library import UNCOMMITTED

LANGUAGES = i18n.LANGUAGES
# Where a shortened text may end: after a sentence or a clause, in either language.
_BOUNDARY = re.compile(r"(?<=[.!?;:,])\s|(?<=[。！？；：，、])")


def build_environment(language: str, overrides: Path | None = None) -> Environment:
    """Templates of the package; a file of the same path under `overrides` (channels.templates) wins."""
    package = PackageLoader("aiops", "templates")
    environment = Environment(
        loader=ChoiceLoader([FileSystemLoader(overrides), package]) if overrides else package,
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    catalog = messages(language)

    def translate(key: str, **values: object) -> str:
        return catalog.get(key, key).format(**values)

    def say(text: Any) -> str:
        return i18n.say(text, language)

    def commit(value: Any) -> str:
        """A runbook's commit as a reader sees it: 12 hex digits, or that the file has uncommitted changes."""
        return translate("runbook_uncommitted") if value in (None, UNCOMMITTED) else str(value)[:12]

    environment.globals["t"] = translate
    environment.globals["language"] = language
    environment.filters["say"] = say
    environment.filters["detail"] = i18n.detail
    environment.filters["commit"] = commit
    environment.filters["shorten"] = shorten
    environment.filters["when"] = _when
    environment.filters["number"] = _number
    environment.filters["shell"] = _shell
    return environment


def messages(language: str) -> Mapping[str, str]:
    """The catalog of `language` (aiops/templates/i18n/)."""
    return i18n.catalog(language)


def shorten(text: Any, limit: int | None) -> str:
    """`text` in at most `limit` characters (all of it for None): cut after the last sentence or clause that fits,
    else after the last word, else where it must, and marked "…" when cut."""
    value = str(text)
    if limit is None or len(value) <= limit:
        return value
    room = value[: max(limit - 1, 0)]
    ends = [found.start() for found in _BOUNDARY.finditer(room)]
    cut = next((end for end in reversed(ends) if end >= len(room) // 3), None)
    if cut is None:
        space = room.rfind(" ")
        cut = space if space >= len(room) // 3 else len(room)
    return room[:cut].rstrip(" .,;:。，、；：") + "…"


def _when(value: Any) -> str:
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return str(moment.strftime("%Y-%m-%d %H:%M:%S UTC"))


def _number(value: Any) -> str:
    if value is None:
        return "—"
    number = float(value)
    if number != number:  # NaN
        return "NaN"
    if number == int(number) and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.4g}"


def _shell(argv: Any) -> str:
    """An argv as one line a reader can paste into a shell: each item quoted where needed."""
    return shlex.join(str(item) for item in argv)
