"""The Jinja2 environment for pages, channel messages and the offline diagnosis, in zh-CN or en."""

from __future__ import annotations

import shlex
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)

LANGUAGES = ("zh-CN", "en")


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

    environment.globals["t"] = translate
    environment.globals["language"] = language
    environment.filters["when"] = _when
    environment.filters["number"] = _number
    environment.filters["shell"] = _shell
    return environment


@cache
def messages(language: str) -> dict[str, str]:
    text = (
        resources.files("aiops").joinpath("templates", "i18n", f"{language}.yml").read_text(encoding="utf-8")
    )
    loaded: dict[str, str] = yaml.safe_load(text)
    return loaded


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
