"""Alertmanager matchers (`severity=~"warning|critical"`, `team="db"`, `env!=dev`), parsed and evaluated.

The syntax is Alertmanager's: a label name (plain, or double-quoted for UTF-8 names), one of `=`, `!=`, `=~`,
`!~`, and a value that may be double-quoted (with `\\"`, `\\\\` and `\\n` escapes; any other backslash is kept, so
regexes such as `"db\\.example"` work) or unquoted. Regexes are anchored at both ends, as Alertmanager does, and a
label the alert does not have counts as the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Operator = Literal["=", "!=", "=~", "!~"]
_OPERATORS: tuple[Operator, ...] = ("=~", "!~", "!=", "=")  # longest first, so `=~` is not read as `=`
_CLASSIC_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# An unquoted label name: anything but whitespace and the characters that delimit matchers.
_UNQUOTED_NAME = re.compile(r"[^\s{}!=~,\"'`<>]+")
# A leading Go flag group such as `(?i)`: Python accepts global flags only at the very start of a pattern.
_FLAGS = re.compile(r"\(\?([a-zA-Z]+)\)")


@dataclass(frozen=True)
class Matcher:
    """One Alertmanager matcher: `name op value`."""

    name: str
    op: Operator
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "_regex", _compile(self.value))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy this matcher; a missing label equals ""."""
        actual = labels.get(self.name, "")
        if self._regex is not None:
            found = self._regex.fullmatch(actual) is not None
            return found if self.op == "=~" else not found
        return (actual == self.value) if self.op == "=" else (actual != self.value)

    def __str__(self) -> str:
        name = self.name if _CLASSIC_NAME.fullmatch(self.name) else _quote(self.name)
        return f"{name}{self.op}{_quote(self.value)}"


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher in Alertmanager syntax; raises `ValueError` saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(
            f"a matcher must be a string such as 'severity=\"critical\"', not {type(text).__name__}"
        )
    rest = text.strip()
    if not rest:
        raise ValueError('a matcher is empty; write it as name="value" (or !=, =~, !~)')
    name, rest = _read_name(text, rest)
    op, rest = _read_operator(text, name, rest)
    value = _read_value(text, rest.strip())
    try:
        return Matcher(name, op, value)
    except ValueError as error:
        raise ValueError(f"{text!r}: {error}") from None


def _read_name(text: str, rest: str) -> tuple[str, str]:
    if rest.startswith('"'):
        end = _closing_quote(rest)
        if end < 0:
            raise ValueError(f"{text!r}: the quoted label name has no closing double quote")
        return _unescape(text, rest[1:end]), rest[end + 1 :].lstrip()
    found = _UNQUOTED_NAME.match(rest)
    if found is None:
        raise ValueError(f"{text!r}: expected a label name before the operator")
    return found.group(), rest[found.end() :].lstrip()


def _read_operator(text: str, name: str, rest: str) -> tuple[Operator, str]:
    for op in _OPERATORS:
        if rest.startswith(op):
            after = rest[len(op) :]
            if op == "=" and after.startswith("="):
                raise ValueError(f"{text!r}: bad operator '==' after {name!r}; use =, !=, =~ or !~")
            return op, after
    if not rest:
        raise ValueError(f"{text!r}: no operator after label {name!r}; use =, !=, =~ or !~")
    raise ValueError(f"{text!r}: bad operator {rest[:2]!r} after label {name!r}; use =, !=, =~ or !~")


def _read_value(text: str, raw: str) -> str:
    if raw.startswith('"'):
        end = _closing_quote(raw)
        if end < 0:
            raise ValueError(f"{text!r}: the quoted value has no closing double quote")
        if raw[end + 1 :].strip():
            raise ValueError(f"{text!r}: unexpected text {raw[end + 1 :].strip()!r} after the quoted value")
        return _unescape(text, raw[1:end])
    return _unescape(text, raw)


def _closing_quote(quoted: str) -> int:
    """Index of the double quote closing `quoted` (which starts with one), or -1."""
    escaped = False
    for index in range(1, len(quoted)):
        char = quoted[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return index
    return -1


def _unescape(text: str, raw: str) -> str:
    """Alertmanager's unescaping: `\\n`, `\\"` and `\\\\`; any other backslash stays literal."""
    out: list[str] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char == "\\" and index + 1 < len(raw):
            following = raw[index + 1]
            out.append("\n" if following == "n" else following if following in '"\\' else char + following)
            index += 2
            continue
        if char == '"':
            raise ValueError(f'{text!r}: unescaped double quote in {raw!r}; write it as \\"')
        out.append(char)
        index += 1
    return "".join(out)


def _compile(value: str) -> re.Pattern[str]:
    try:
        re.compile(value)  # on its own first, so that error positions point into the value as written
    except re.error as error:
        raise ValueError(f"bad regex {value!r}: {error}") from None
    flags = _FLAGS.match(value)
    if flags is None:
        return re.compile(f"(?:{value})")
    unsupported = set(flags.group(1)) - set("aimsx")
    if unsupported:
        raise ValueError(f"bad regex {value!r}: unsupported flag {''.join(sorted(unsupported))!r}")
    return re.compile(f"(?{flags.group(1)})(?:{value[flags.end() :]})")


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
