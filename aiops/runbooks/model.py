"""One runbook file: markdown with optional YAML front matter saying which alerts it covers and what to gather.

Front matter is the YAML between a first line `---` and the next `---` line. It is *aiops front matter* when it
has any of the keys `alerts`, `match`, `evidence` or `actions`; then it is validated strictly and a misspelt field
is an error. Any other front matter (Hugo's `title`, `weight`, `tags`, …, or TOML between `+++` lines) belongs to
a site generator: only a string `title` is used, so a community collection loads without edits.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from aiops.payload import problem
from aiops.runbooks.matchers import Matcher, parse_matcher
from aiops.units import Seconds

AIOPS_KEYS = frozenset({"alerts", "match", "evidence", "actions"})
# Page keys of Hugo, Jekyll and MkDocs that may sit next to aiops keys without being reported as misspellings.
SITE_KEYS = frozenset(
    {
        "aliases",
        "author",
        "authors",
        "categories",
        "date",
        "description",
        "draft",
        "keywords",
        "lastmod",
        "layout",
        "slug",
        "summary",
        "tags",
        "toc",
        "weight",
    }
)
DEFAULT_RANGE = 3600.0
_HEADING = re.compile(r"#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*")
_FENCE = re.compile(r"(`{3,}|~{3,})")


class RunbookError(Exception):
    """A runbook that cannot be used; `problems` are `field: reason` lines, `path` is relative to the folder."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__("\n".join(f"{path.as_posix()}: {problem}" for problem in problems))
        self.path = path
        self.problems = problems


@dataclass(frozen=True)
class MetricQuery:
    """A PromQL template to run over the last `range` seconds, shown under `name`."""

    name: str
    query: str
    range: float


@dataclass(frozen=True)
class LogQuery:
    """Either a LogQL template (`loki`) or a read-only catalog action (`command`), over `range` seconds."""

    loki: str | None
    command: str | None
    range: float
    limit: int | None = None


@dataclass(frozen=True)
class Runbook:
    """A parsed runbook; `path` is relative to the runbooks folder, `body` is the markdown after front matter."""

    path: Path
    title: str
    alerts: tuple[str, ...]
    matchers: tuple[Matcher, ...]
    metrics: tuple[MetricQuery, ...]
    logs: tuple[LogQuery, ...]
    actions: tuple[str, ...]
    body: str


def _matcher(value: object) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"must be a matcher string such as 'severity=\"critical\"', not {type(value).__name__}"
        )
    return parse_matcher(value)


_Name = Annotated[str, Field(min_length=1)]
_Range = Annotated[Seconds, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class _Metric(_Strict):
    name: _Name
    query: _Name
    range: _Range = DEFAULT_RANGE


class _Log(_Strict):
    loki: _Name | None = None
    command: _Name | None = None
    range: _Range = DEFAULT_RANGE
    limit: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _Log:
        if (self.loki is None) == (self.command is None):
            raise ValueError("needs exactly one of loki (a LogQL query) or command (a catalog action id)")
        return self


class _Evidence(_Strict):
    metrics: list[_Metric] = Field(default_factory=list)
    logs: list[_Log] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> _Evidence:
        names = [metric.name for metric in self.metrics]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"metric names must be unique; repeated: {', '.join(repeated)}")
        return self


class _FrontMatter(_Strict):
    title: _Name | None = None
    alerts: list[_Name] = Field(default_factory=list)
    match: list[Annotated[Matcher, BeforeValidator(_matcher)]] = Field(default_factory=list)
    evidence: _Evidence = Field(default_factory=_Evidence)
    actions: list[_Name] = Field(default_factory=list)


def parse_runbook(root: Path, path: Path) -> Runbook:
    """Read and validate the runbook at `path` (absolute, or relative to `root`); raises `RunbookError`."""
    full = path if path.is_absolute() else root / path
    relative = _relative(root, full)
    try:
        text = full.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise RunbookError(relative, [f"cannot be read ({error.strerror or error})"]) from None
    except UnicodeDecodeError as error:
        raise RunbookError(relative, [f"is not UTF-8 text (byte {error.start} cannot be decoded)"]) from None
    return parse_text(relative, text)


def parse_text(relative: Path, text: str) -> Runbook:
    """Parse runbook text whose file is `relative` to the runbooks folder; raises `RunbookError`."""
    front, body, problems = _split_front_matter(text)
    if problems:
        raise RunbookError(relative, problems)
    if not any(key in front for key in AIOPS_KEYS):
        return _plain(relative, front, body)
    try:
        model = _FrontMatter.model_validate({k: v for k, v in front.items() if k not in SITE_KEYS})
    except ValidationError as error:
        raise RunbookError(
            relative, [problem(item, "front matter") for item in error.errors(include_url=False)]
        ) from None
    return Runbook(
        path=relative,
        title=model.title or _title(body, relative),
        alerts=tuple(model.alerts),
        matchers=tuple(model.match),
        metrics=tuple(MetricQuery(m.name, m.query, m.range) for m in model.evidence.metrics),
        logs=tuple(LogQuery(g.loki, g.command, g.range, g.limit) for g in model.evidence.logs),
        actions=tuple(model.actions),
        body=body,
    )


def _plain(relative: Path, front: dict[str, Any], body: str) -> Runbook:
    """A runbook without aiops front matter: matched by its file name only."""
    title = front.get("title")
    if not isinstance(title, str) or not title.strip():
        title = _title(body, relative)
    return Runbook(relative, title.strip(), (), (), (), (), (), body)


def _split_front_matter(text: str) -> tuple[dict[str, Any], str, list[str]]:
    """(front matter mapping, body, problems)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() not in ("---", "+++"):
        return {}, text, []
    fence = lines[0].strip()
    end = next((index for index in range(1, len(lines)) if lines[index].strip() == fence), None)
    if end is None:
        return {}, text, [f"front matter: the opening {fence} on line 1 has no closing {fence} line"]
    source, body = "".join(lines[1:end]), "".join(lines[end + 1 :])
    if fence == "+++":
        return _toml(source), body, []
    try:
        loaded = yaml.safe_load(source)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        # The YAML starts on line 2 of the file.
        where = f" at line {mark.line + 2}, column {mark.column + 1}" if mark else ""
        return (
            {},
            body,
            [f"front matter: is not valid YAML{where}: {getattr(error, 'problem', None) or error}"],
        )
    if loaded is None:
        return {}, body, []
    if not isinstance(loaded, dict):
        return (
            {},
            body,
            [f"front matter: must be a mapping of fields (title, alerts, …), not {_kind(loaded)}"],
        )
    return {str(key): value for key, value in loaded.items()}, body, []


def _toml(source: str) -> dict[str, Any]:
    """Hugo's TOML front matter: a site generator's, never aiops's; a bad one is ignored like its keys."""
    try:
        loaded = tomllib.loads(source)
    except tomllib.TOMLDecodeError:
        return {}
    title = loaded.get("title")
    return {"title": title} if isinstance(title, str) else {}


def _title(body: str, relative: Path) -> str:
    """The first level-1 `# heading` outside code blocks, else the file stem."""
    fence: str | None = None
    for line in body.splitlines():
        stripped = line.strip()
        opening = _FENCE.match(stripped)
        if opening is not None:
            if fence is None:
                fence = opening.group(1)
            elif stripped.startswith(fence[0] * len(fence)):
                fence = None
            continue
        if fence is None and not line.startswith("    "):
            heading = _HEADING.fullmatch(stripped)
            if heading is not None:
                return heading.group(1).strip()
    return relative.stem


def _relative(root: Path, full: Path) -> Path:
    try:
        return full.relative_to(root)
    except ValueError:
        return full


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else type(value).__name__
