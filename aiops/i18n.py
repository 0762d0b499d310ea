"""What aiops says to people, in their language: the catalogs (`aiops/templates/i18n/<language>.yml`) and the
messages — a catalog key and the values it names — that stages record instead of sentences.

A stage records a `Message` (`message("runbook_none", alert=…, count=…)`); the card, page or console that shows
it says it in `server.language` (`say`), and a log line says it in English (`str(message)`). What is not aiops's
own wording — a label value, the model's or a runbook's text, what Prometheus or SSH answered — is never
translated: it is a plain string, or a message's `detail`, shown as it came.

A catalog entry may have a `<key>.one` variant, used when the message's `count` is 1 ("1 runbook").
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any

import yaml

from aiops.models import Message, Text

LANGUAGES = ("zh-CN", "en")
ENGLISH = "en"

Param = str | int | float | Message


@cache
def catalog(language: str) -> Mapping[str, str]:
    """The catalog of `language`: key → text with `{name}` fields."""
    path = resources.files("aiops").joinpath("templates", "i18n", f"{language}.yml")
    loaded: dict[str, str] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def message(key: str, detail: object = None, **params: Param) -> Message:
    """A message, its English said now; `detail` is quoted text from elsewhere (an error's own words). Every key
    used is in both catalogs (tests/test_i18n.py checks)."""
    quoted = None if detail is None else str(detail)
    draft = Message(key, params, detail=quoted)
    english = _said(draft, ENGLISH, str)
    return Message(key, params, english + (f": {quoted}" if quoted else ""), quoted)


def unexpected(error: BaseException) -> Message:
    """An error nobody expected, named by its kind; its own words are the detail."""
    return message("unexpected_error", detail=str(error) or None, kind=type(error).__name__)


def say(text: Text | Mapping[str, Any] | None, language: str) -> str:
    """`text` for a reader of `language`: a message said from the catalog (its detail left out), a string as it
    is; "" for None. A message as stored (a mapping with its key) is read first."""
    found = read(text)
    if found is None:
        return ""
    if isinstance(found, str):
        return found
    return _said(found, language, lambda item: say(item, language))


def english(text: Text | Mapping[str, Any] | None) -> str:
    """`text` in English with its detail, as a log line or the model's prompt shows it."""
    found = read(text)
    return "" if found is None else str(found)


def detail(text: Text | Mapping[str, Any] | None) -> str:
    """The quoted detail of a message, or of the first message among its values that has one; "" for none."""
    found = read(text)
    if not isinstance(found, Message):
        return ""
    inner = (detail(item) for item in found.params.values() if isinstance(item, Message))
    return found.detail or next((text for text in inner if text), "")


def read(value: object) -> Text | None:
    """A message or a string from what the store or a page holds: a `Message`, its stored mapping, a string."""
    if value is None or isinstance(value, Message | str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("key"), str):
        params = value.get("params") or {}
        return Message(
            value["key"],
            {name: _param(item) for name, item in params.items()},
            str(value.get("english") or ""),
            value.get("detail"),
        )
    return str(value)


def to_column(text: Text | None) -> str | None:
    """A message as a text column holds it (its JSON); a string as it is."""
    if not isinstance(text, Message):
        return text
    return json.dumps(_plain(text), ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def from_column(value: str | None) -> Text | None:
    """What `to_column` wrote: a message, or the string a row held before messages existed."""
    if value is None or not value.startswith('{"'):
        return value
    try:
        loaded = json.loads(value)
    except ValueError:
        return value
    is_message = isinstance(loaded, dict) and {"key", "english"} <= loaded.keys()
    return read(loaded) if is_message else value


def plain(value: Any, language: str) -> Any:
    """A stored document with each message in it (a mapping with `key` and `english`) given a `text`: the
    sentence in `language`. For the API, whose readers may show the text or go by the key."""
    if isinstance(value, Mapping):
        if isinstance(value.get("key"), str) and "english" in value:
            return {**value, "text": say(value, language)}
        return {name: plain(item, language) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item, language) for item in value]
    return value


def _said(found: Message, language: str, nested: Callable[[Message], str]) -> str:
    entries, fallback = catalog(language), catalog(ENGLISH)
    keys = ([f"{found.key}.one"] if found.params.get("count") == 1 else []) + [found.key]
    pattern = next((entries[key] for key in keys if key in entries), None)
    if pattern is None:
        pattern = next((fallback[key] for key in keys if key in fallback), None)
    if pattern is None:
        return found.english or found.key
    values = {
        name: nested(item) if isinstance(item, Message) else item for name, item in found.params.items()
    }
    try:
        return _FORMATTER.vformat(pattern, (), values)
    except (
        KeyError,
        IndexError,
        ValueError,
    ):  # a message stored by a version whose catalog said it otherwise
        return found.english or found.key


def _param(value: object) -> Param:
    if isinstance(value, Mapping):
        found = read(value)
        return found if found is not None else ""
    return value if isinstance(value, str | int | float) else str(value)


def _plain(found: Message) -> dict[str, Any]:
    return {
        "key": found.key,
        "params": {
            name: _plain(item) if isinstance(item, Message) else item for name, item in found.params.items()
        },
        "english": found.english,
        "detail": found.detail,
    }


_FORMATTER = string.Formatter()
