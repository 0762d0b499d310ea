"""Rendering a runbook's PromQL or LogQL query template with an alert's labels, safely.

A template is Jinja2 with two names, `labels` and `annotations`, e.g.
`node_filesystem_avail_bytes{instance="{{ labels.instance }}"}` or `{job="{{ labels.job }}"} |= "No space left"`.
Label values come from whoever can send an alert, so they are untrusted; three rules keep a value from changing
what the query means:

- every `{{ … }}` must stand inside a double-quoted string literal of the query (`"…"`); one outside any string,
  inside a back-tick raw string, inside a single-quoted string, or right after a backslash is refused, and so
  are `{% … %}` statements and `{# … #}` comments (a query has no control flow);
- every expression's output is escaped for a Go double-quoted string (both languages use Go's string syntax):
  `\\` and `"` get a backslash, line breaks and tabs become `\\n`, `\\r`, `\\t`, other control and invisible
  format characters become `\\xNN` / `\\uNNNN`; a value with a NUL character or a lone surrogate, or longer than
  4096 characters, is refused. Filters run before this escaping, so no filter can undo it;
- the template runs in Jinja's sandbox with `StrictUndefined`: a label the alert lacks is an error naming it.

Escaping keeps a value inside its string, so in a regex matcher (`=~"…"`, `!~"…"`, LogQL's `|~ "…"`) it cannot
change the query's structure, but its regex metacharacters still act as regex. To match the value literally,
pipe it through the `re` filter, which backslash-escapes RE2's metacharacters:
`{instance=~"{{ labels.instance | re }}(:9100)?"}` with `instance = "a.b"` renders `instance=~"a\\\\.b(:9100)?"`,
the regex `a\\.b(:9100)?`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from functools import cache, lru_cache
from typing import Literal, get_args

from jinja2 import StrictUndefined, Template, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

Language = Literal["promql", "logql"]

MAX_VALUE_LENGTH = 4096

_LANGUAGE_NAMES: dict[str, str] = {"promql": "PromQL", "logql": "LogQL"}
_SIMPLE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})
_RE2_METACHARACTERS = frozenset("\\.+*?()|[]{}^$")


class RenderError(ValueError):
    """A template or a value that cannot be rendered safely; the message says which and why."""


def render(
    template: str,
    labels: Mapping[str, str],
    language: Language,
    *,
    annotations: Mapping[str, str] | None = None,
) -> str:
    """The query `template` rendered with the alert's `labels` (and `annotations`), every value escaped.

    Raises RenderError when the template puts an expression where a value could escape its string, uses a
    statement, names a label the alert does not have, or when a value cannot be written into a string safely.
    """
    if language not in _LANGUAGE_NAMES:
        raise RenderError(f"unknown query language {language!r}; use one of {', '.join(get_args(Language))}")
    compiled = _compile(template, language)
    try:
        return compiled.render(
            labels=_Values("label", labels), annotations=_Values("annotation", annotations or {})
        )
    except RenderError:
        raise
    except UndefinedError as error:  # a missing label or annotation: _Missing's message says which
        raise RenderError(str(error)) from error
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as error:
        raise RenderError(f"the {_LANGUAGE_NAMES[language]} template failed to render: {error}") from error


def sample_annotations() -> dict[str, str]:
    """The annotations alerting rules usually carry, for checking templates that use them."""
    return {
        "summary": "Host out of disk space (instance web-1:9100)",
        "description": "Disk is almost full (< 10% left)",
        "runbook_url": "https://git.example.com/ops/runbooks/HostOutOfDiskSpace.md",
    }


def sample_labels() -> dict[str, str]:
    """Realistic labels of a node or Kubernetes alert, for checking that templates render (lint)."""
    return {
        "alertname": "HostOutOfDiskSpace",
        "severity": "critical",
        "instance": "node-1.example.internal:9100",
        "job": "node",
        "mountpoint": "/var/lib/docker",
        "device": "/dev/nvme0n1p1",
        "fstype": "ext4",
        "cluster": "prod-1",
        "env": "prod",
        "region": "eu-west-1",
        "team": "sre",
        "node": "node-1",
        "host": "node-1.example.internal",
        "service": "checkout",
        "app": "checkout",
        "namespace": "shop",
        "pod": "checkout-7d9f8b6c5d-x2k4q",
        "container": "checkout",
        "deployment": "checkout",
        "statefulset": "postgres",
        "daemonset": "node-exporter",
        "persistentvolumeclaim": "data-postgres-0",
        "interface": "eth0",
        "reason": "OOMKilled",
        # labels the bundled rules give their alerts
        "name": "nginx.service",
        "direction": "receive",
        "channel": "feishu",
        "outcome": "failed",
    }


def go_quote_body(value: str) -> str:
    """`value` escaped to sit between the quotes of a Go (PromQL, LogQL) double-quoted string literal."""
    _check_value(value, "a value")
    return "".join(_escape_character(character) for character in value)


def regex_literal(value: object) -> str:
    """`value` with RE2's metacharacters backslash-escaped, so a regex matches it literally (the `re` filter)."""
    return "".join(f"\\{c}" if c in _RE2_METACHARACTERS else c for c in str(value))


class _Values:
    """An alert's labels or annotations as templates see them: `labels.x` or `labels["x"]`, checked on use.

    Not a dict on purpose: `labels.items` or `labels.values` must look up a label of that name, not a method.
    """

    __slots__ = ("_kind", "_values")

    def __init__(self, kind: str, values: Mapping[str, str]) -> None:
        self._kind = kind
        self._values = values

    def __getitem__(self, name: str) -> str:
        value = self._values[name]  # KeyError → Jinja's undefined → _Missing's message
        _check_value(value, f"{self._kind} {name!r}")
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def missing(self, name: object) -> str:
        present = ", ".join(sorted(self._values)) or "none"
        return f"{self._kind} {name!r} is not on the alert (its {self._kind}s: {present})"


class _Missing(StrictUndefined):
    """StrictUndefined whose error says which label or annotation is missing, or which name is unknown."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint is not None:
            return self._undefined_hint
        if isinstance(self._undefined_obj, _Values):
            return self._undefined_obj.missing(self._undefined_name)
        if self._undefined_obj is missing:
            return f"{self._undefined_name!r} is not defined; a query template can use only labels and annotations"
        message: str = super()._undefined_message
        return message


def _check_value(value: str, what: str) -> None:
    if len(value) > MAX_VALUE_LENGTH:
        raise RenderError(
            f"{what} is {len(value)} characters long; values over {MAX_VALUE_LENGTH} are refused"
        )
    if "\x00" in value:
        raise RenderError(f"{what} contains a NUL character, which cannot be written into a query safely")
    if any("\ud800" <= c <= "\udfff" for c in value):
        raise RenderError(
            f"{what} contains a lone surrogate (not valid Unicode), so it cannot be quoted safely"
        )


def _escape_character(character: str) -> str:
    simple = _SIMPLE_ESCAPES.get(character)
    if simple is not None:
        return simple
    if unicodedata.category(character) not in _INVISIBLE:
        return character
    code = ord(character)
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _finalize(value: object) -> str:
    """Jinja's hook on every `{{ … }}` output: the value as the body of a Go double-quoted string."""
    return go_quote_body(value if isinstance(value, str) else str(value))


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    environment = ImmutableSandboxedEnvironment(
        undefined=_Missing, finalize=_finalize, autoescape=False, keep_trailing_newline=True
    )
    environment.globals.clear()  # only `labels` and `annotations`; no range(), lipsum(), …
    environment.filters["re"] = regex_literal
    return environment


@lru_cache(maxsize=512)
def _compile(template: str, language: Language) -> Template:
    environment = _environment()
    try:
        _check_placement(template, _LANGUAGE_NAMES[language])
        return environment.from_string(template)
    except TemplateError as error:
        raise RenderError(f"the {_LANGUAGE_NAMES[language]} template is not valid Jinja: {error}") from error


# States of the query-language scanner in _check_placement.
_CODE, _COMMENT, _DOUBLE, _DOUBLE_ESCAPE, _SINGLE, _SINGLE_ESCAPE, _RAW = range(7)


def _check_placement(template: str, language: str) -> None:
    """Refuse a template whose `{{ … }}` could let a value escape its string literal, or that has statements.

    Walks the template's static text with the query language's string rules (Go's: "…" with backslash escapes,
    '…', `…` raw, `#` comments to the end of the line) and checks the state at each expression.
    """
    state = _CODE
    for line, kind, text in _environment().lex(template):
        if kind == "data":
            state = _scan(text, state, line, language)
        elif kind == "variable_begin":
            _check_expression_state(state, line, language)
        elif kind in ("block_begin", "raw_begin", "linestatement_begin"):
            raise RenderError(
                f"line {line}: {{% … %}} statements are not allowed in a {language} template (no control flow "
                "in queries); write one query per case instead"
            )
        elif kind in ("comment_begin", "linecomment_begin"):
            raise RenderError(
                f"line {line}: {{# … #}} comments are not allowed in a {language} template; use a # comment"
            )
    if state in (_DOUBLE, _DOUBLE_ESCAPE, _SINGLE, _SINGLE_ESCAPE, _RAW):
        raise RenderError(f"the {language} template ends inside a string literal; close its quote")


def _check_expression_state(state: int, line: int, language: str) -> None:
    where = {
        _CODE: "outside any string literal",
        _COMMENT: "inside a # comment",
        _DOUBLE_ESCAPE: "right after a backslash",
        _SINGLE: "inside a '…' string",
        _SINGLE_ESCAPE: "inside a '…' string",
        _RAW: "inside a `…` raw string, which cannot escape a back-tick",
    }
    if state != _DOUBLE:
        raise RenderError(
            f"line {line}: {{{{ … }}}} stands {where[state]}; in a {language} template every expression must be "
            'inside a double-quoted string, e.g. instance="{{ labels.instance }}"'
        )


def _scan(text: str, state: int, line: int, language: str) -> int:
    """The scanner's state after the static `text`, starting in `state`."""
    for offset, character in enumerate(text):
        if state == _CODE:
            state = {'"': _DOUBLE, "'": _SINGLE, "`": _RAW, "#": _COMMENT}.get(character, _CODE)
        elif state == _COMMENT:
            if character == "`":
                # Whether a language treats `#` as a comment here must not matter: outside a comment this
                # back-tick would open a raw string that may span lines, so the two readings would part ways.
                raise RenderError(
                    f"line {_line(text, offset, line)}: a # comment in a {language} template cannot contain a back-tick"
                )
            state = _CODE if character == "\n" else _COMMENT
        elif state in (_DOUBLE, _SINGLE):
            quote = '"' if state == _DOUBLE else "'"
            if character == "\n":
                raise RenderError(
                    f"line {_line(text, offset, line)}: a {quote}…{quote} string cannot span lines; close it or use \\n"
                )
            if character == "\\":
                state = _DOUBLE_ESCAPE if state == _DOUBLE else _SINGLE_ESCAPE
            elif character == quote:
                state = _CODE
        elif state in (_DOUBLE_ESCAPE, _SINGLE_ESCAPE):
            state = _DOUBLE if state == _DOUBLE_ESCAPE else _SINGLE
        elif state == _RAW and character == "`":
            state = _CODE
    return state


def _line(text: str, offset: int, first_line: int) -> int:
    return first_line + text.count("\n", 0, offset)
