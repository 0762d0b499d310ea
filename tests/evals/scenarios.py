"""Evaluation scenarios: an alert, its runbooks, what every evidence source answered, and what a good diagnosis says.

Each folder under `scenarios/` is one case; README.md describes the files. `load_scenario` reads one folder, checks
each file's shape (an error names the file and the field), expands the shorthand forms (`ramp`, `constant`,
`repeat`, `{time:…}`) into explicit points and lines, and turns every time written relative to the alert's
startsAt into epoch seconds.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from aiops.models import Alert, AlertGroup
from aiops.payload import WebhookPayload, describe_error

ROOT = Path(__file__).parent / "scenarios"

Confidence = Literal["low", "medium", "high"]
Point = tuple[float, str]  # (epoch seconds, sample value as Prometheus writes it)
LogLine = tuple[float, str]  # (epoch seconds, line)

_TIME = re.compile(r"\{time(?P<offset>[+-]\d+(?:\.\d+)?)?:(?P<format>[^{}]*)\}")


class ScenarioError(ValueError):
    """A scenario file that is missing or malformed; the message names the file and the field."""


# --- what a scenario is ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One recorded time series: its labels and every sample, oldest first."""

    metric: Mapping[str, str]
    values: tuple[Point, ...]


@dataclass(frozen=True)
class PromAnswer:
    """What Prometheus answers to any query that `match` finds a match in (`re.search`)."""

    match: re.Pattern[str]
    series: tuple[Series, ...]


@dataclass(frozen=True)
class LogStream:
    """One recorded Loki stream: its labels and its lines, oldest first."""

    stream: Mapping[str, str]
    lines: tuple[LogLine, ...]


@dataclass(frozen=True)
class LokiAnswer:
    """What Loki answers to any LogQL query that `match` finds a match in (`re.search`)."""

    match: re.Pattern[str]
    streams: tuple[LogStream, ...]


@dataclass(frozen=True)
class CommandOutput:
    """The recorded result of a read-only catalog action run on the alert's host."""

    stdout: str
    stderr: str
    exit_status: int


@dataclass(frozen=True)
class PastIncident:
    """An earlier incident of the same alert on the same target; times are epoch seconds."""

    opened: float
    resolved: float | None
    summary: str
    outcome: str


@dataclass(frozen=True)
class Fact:
    """Something a good diagnosis needs, and a case-insensitive pattern that finds it in the prompt."""

    fact: str
    pattern: re.Pattern[str]

    def found_in(self, text: str) -> bool:
        return self.pattern.search(text) is not None


@dataclass(frozen=True)
class ProposedAction:
    id: str
    reason: str
    params: Mapping[str, str]


@dataclass(frozen=True)
class Answer:
    """The recorded model answer (`answer.json`), parsed; `Scenario.answer_text` is the file as written."""

    summary: str
    probable_cause: str
    confidence: Confidence
    evidence: tuple[str, ...]
    impact: str
    next_steps: tuple[str, ...]
    actions: tuple[ProposedAction, ...]


@dataclass(frozen=True)
class Expectation:
    """How a real model's diagnosis is graded; `runbook` is the path the alert must match, or None for none."""

    runbook: str | None
    cause_keywords: tuple[str, ...]
    allowed_actions: tuple[str, ...]
    forbidden_actions: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    """One evaluation case, with every time already absolute (epoch seconds)."""

    name: str
    folder: Path
    starts_at: datetime  # the anchor of every relative time in the folder
    payload_text: str  # alert.json as it is posted to the webhook (startsAt moved when the anchor was moved)
    group: AlertGroup
    prometheus: tuple[PromAnswer, ...]
    loki: tuple[LokiAnswer, ...]
    commands: Mapping[str, CommandOutput]
    history: tuple[PastIncident, ...]
    facts: tuple[Fact, ...]
    answer: Answer
    answer_text: str
    expect: Expectation

    @property
    def runbooks(self) -> Path:
        """The scenario's runbooks folder (runbooks and `actions.yml`), to point aiops at."""
        return self.folder / "runbooks"

    @property
    def alert(self) -> Alert:
        return self.group.alerts[0]

    def prometheus_answer(self, query: str) -> PromAnswer | None:
        """The recorded answer for a PromQL query: the first entry whose pattern is found in it."""
        return _first(self.prometheus, query)

    def loki_answer(self, query: str) -> LokiAnswer | None:
        """The recorded answer for a LogQL query: the first entry whose pattern is found in it."""
        return _first(self.loki, query)

    def missing_facts(self, prompt: str) -> list[Fact]:
        """The facts whose pattern is not found in `prompt`."""
        return [fact for fact in self.facts if not fact.found_in(prompt)]


_Answered = TypeVar("_Answered", PromAnswer, LokiAnswer)


def _first(answers: Sequence[_Answered], query: str) -> _Answered | None:
    return next((answer for answer in answers if answer.match.search(query)), None)


# --- the files' shapes -----------------------------------------------------------------------------------


def _as_list(value: object) -> object:
    """A shorthand that may be written once (a mapping) or several times (a list of mappings)."""
    return [value] if isinstance(value, dict) else value


def _compiles(flags: int) -> Callable[[object], object]:
    def check(value: object) -> object:
        if isinstance(value, str):
            try:
                re.compile(value, flags)
            except re.error as error:
                raise ValueError(f"is not a valid Python regex: {error}") from None
        return value

    return check


_Text = Annotated[str, Field(min_length=1)]
_Regex = Annotated[str, Field(min_length=1), BeforeValidator(_compiles(0))]
_FactRegex = Annotated[str, Field(min_length=1), BeforeValidator(_compiles(re.IGNORECASE))]
_Labels = dict[_Text, str]
_ActionId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Span(_Shape):
    start_at: float = Field(alias="from")
    to: float
    step: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> _Span:
        if self.to < self.start_at:
            raise ValueError(f"to ({self.to:g}) is before from ({self.start_at:g})")
        return self

    def times(self) -> list[float]:
        count = int((self.to - self.start_at) / self.step + 1e-9) + 1
        return [self.start_at + index * self.step for index in range(count)]


class _Ramp(_Span):
    start: float
    end: float
    jitter: float = Field(default=0.0, ge=0)  # ± this much, pseudo-random but the same on every load
    decimals: int = Field(default=6, ge=0, le=12)

    def value(self, time: float) -> float:
        share = (time - self.start_at) / (self.to - self.start_at) if self.to > self.start_at else 1.0
        return self.start + (self.end - self.start) * share


class _Constant(_Span):
    level: float = Field(alias="value")
    jitter: float = Field(default=0.0, ge=0)
    decimals: int = Field(default=6, ge=0, le=12)

    def value(self, time: float) -> float:
        return self.level


class _Series(_Shape):
    metric: _Labels
    values: list[tuple[float, str]] = Field(default_factory=list)
    ramp: Annotated[list[_Ramp], BeforeValidator(_as_list)] = Field(default_factory=list)
    constant: Annotated[list[_Constant], BeforeValidator(_as_list)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_points(self) -> _Series:
        if not (self.values or self.ramp or self.constant):
            raise ValueError("needs values, ramp or constant")
        for time, value in self.values:
            try:
                float(value)
            except ValueError:
                raise ValueError(f"value {value!r} at {time:g} is not a number") from None
        return self


class _PromEntry(_Shape):
    match: _Regex
    series: list[_Series]


class _Repeat(_Shape):
    at: float
    every: float = Field(gt=0)
    count: int = Field(ge=1)
    line: _Text
    start: int = 0  # the first value of {i}


class _Stream(_Shape):
    stream: _Labels
    lines: list[tuple[float, str]] = Field(default_factory=list)
    repeat: Annotated[list[_Repeat], BeforeValidator(_as_list)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_lines(self) -> _Stream:
        if not (self.lines or self.repeat):
            raise ValueError("needs lines or repeat")
        return self


class _LokiEntry(_Shape):
    match: _Regex
    streams: list[_Stream]


class _Command(_Shape):
    stdout: str = ""
    stderr: str = ""
    exit_status: int = 0


class _Past(_Shape):
    opened: float = Field(lt=0)
    resolved: float | None = None
    summary: _Text
    outcome: _Text

    @model_validator(mode="after")
    def _ordered(self) -> _Past:
        if self.resolved is not None and not self.opened < self.resolved <= 0:
            raise ValueError("resolved must lie after opened and no later than the alert's startsAt (0)")
        return self


class _Fact(_Shape):
    fact: _Text
    pattern: _FactRegex


class _Action(_Shape):
    id: _ActionId
    reason: _Text
    params: dict[_Text, str]


class _Answer(_Shape):
    summary: _Text
    probable_cause: _Text
    confidence: Confidence
    evidence: list[Annotated[str, Field(pattern=r"^E[1-9][0-9]*$")]]
    impact: _Text
    next_steps: list[_Text]
    actions: list[_Action]


class _Expect(_Shape):
    runbook: _Text | None
    cause_keywords: list[_Text] = Field(min_length=1)
    allowed_actions: list[_ActionId]
    forbidden_actions: list[_ActionId]

    @model_validator(mode="after")
    def _disjoint(self) -> _Expect:
        both = sorted(set(self.allowed_actions) & set(self.forbidden_actions))
        if both:
            raise ValueError(f"{', '.join(both)} cannot be both allowed and forbidden")
        return self


_PROMETHEUS = TypeAdapter(list[_PromEntry])
_LOKI = TypeAdapter(list[_LokiEntry])
_COMMANDS = TypeAdapter(dict[_ActionId, _Command])
_HISTORY = TypeAdapter(list[_Past])
_FACTS = TypeAdapter(Annotated[list[_Fact], Field(min_length=3, max_length=6)])
_EXPECT = TypeAdapter(_Expect)


# --- loading ---------------------------------------------------------------------------------------------


def load_all(root: Path = ROOT) -> list[Scenario]:
    """Every scenario folder under `root` (a folder holding `alert.json`), in name order."""
    return [load_scenario(folder) for folder in sorted(root.iterdir()) if (folder / "alert.json").is_file()]


def load_scenario(folder: Path, *, starts_at: datetime | None = None) -> Scenario:
    """The scenario in `folder`. Relative times count from the alert's startsAt, or from `starts_at` when given,
    in which case every alert's startsAt in the payload moves by the same amount (to replay a case "now")."""
    payload_text, group = _payload(folder / "alert.json", starts_at)
    anchor = group.alerts[0].starts_at
    clock = _Clock(anchor.timestamp())
    answer_text = _read(folder / "answer.json")
    commands = _load_optional(folder / "commands.yml", _COMMANDS) or {}
    history = _load_optional(folder / "history.yml", _HISTORY) or []
    return Scenario(
        name=folder.name,
        folder=folder,
        starts_at=anchor,
        payload_text=payload_text,
        group=group,
        prometheus=_prometheus(folder / "prometheus.yml", clock),
        loki=_loki(folder / "loki.yml", clock),
        commands={
            action: CommandOutput(clock.text(out.stdout), clock.text(out.stderr), out.exit_status)
            for action, out in commands.items()
        },
        history=tuple(
            PastIncident(
                clock.at(past.opened),
                None if past.resolved is None else clock.at(past.resolved),
                past.summary,
                past.outcome,
            )
            for past in history
        ),
        facts=tuple(
            Fact(fact.fact, re.compile(fact.pattern, re.IGNORECASE))
            for fact in _load(folder / "facts.yml", _FACTS)
        ),
        answer=_answer(_parse(folder / "answer.json", answer_text, _Answer.model_validate_json)),
        answer_text=answer_text,
        expect=_expectation(_load(folder / "expect.yml", _EXPECT)),
    )


@dataclass(frozen=True)
class _Clock:
    """Turns times relative to the anchor into epoch seconds, and expands `{time±offset:FORMAT}`."""

    anchor: float

    def at(self, relative: float) -> float:
        return self.anchor + relative

    def text(self, text: str, relative: float = 0.0) -> str:
        def moment(match: re.Match[str]) -> str:
            seconds = self.at(relative + float(match["offset"] or 0))
            return datetime.fromtimestamp(seconds, UTC).strftime(match["format"])

        return _TIME.sub(moment, text)


def _payload(path: Path, starts_at: datetime | None) -> tuple[str, AlertGroup]:
    text = _read(path)
    if starts_at is not None:
        text = _moved(path, text, starts_at)
    group = _parse(path, text, WebhookPayload.model_validate_json).to_group()
    return text, group


def _moved(path: Path, text: str, starts_at: datetime) -> str:
    """The payload with every alert's startsAt moved so that the first one is `starts_at`."""
    body = _parse(path, text, json.loads)
    try:
        firsts = [_timestamp(alert["startsAt"]) for alert in body["alerts"]]
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ScenarioError(f"{path}: alerts[].startsAt: missing or not a timestamp ({error})") from None
    shift = starts_at.astimezone(UTC) - firsts[0]
    for alert, first in zip(body["alerts"], firsts, strict=True):
        alert["startsAt"] = (first + shift).isoformat().replace("+00:00", "Z")
    return json.dumps(body, indent=2)


def _timestamp(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _prometheus(path: Path, clock: _Clock) -> tuple[PromAnswer, ...]:
    entries = _load(path, _PROMETHEUS)
    return tuple(
        PromAnswer(
            re.compile(entry.match),
            tuple(
                _series(item, clock, f"{path}: [{index}].series[{number}]")
                for number, item in enumerate(entry.series)
            ),
        )
        for index, entry in enumerate(entries)
    )


def _series(item: _Series, clock: _Clock, where: str) -> Series:
    points: dict[float, str] = {}
    seed = random.Random(json.dumps(item.metric, sort_keys=True))  # the same jitter on every load

    def add(time: float, value: str) -> None:
        if time in points:
            raise ScenarioError(
                f"{where}: two samples at {time:g}s; values, ramp and constant must not overlap"
            )
        points[time] = value

    for time, value in item.values:
        add(time, value)
    spans: list[_Ramp | _Constant] = [*item.ramp, *item.constant]
    for span in spans:
        for time in span.times():
            add(time, _number(span.value(time) + seed.uniform(-span.jitter, span.jitter), span.decimals))
    return Series(dict(item.metric), tuple((clock.at(time), points[time]) for time in sorted(points)))


def _number(value: float, decimals: int) -> str:
    """A sample as Prometheus writes it: `52613349376`, `0.031`."""
    rounded = round(value, decimals)
    return str(int(rounded)) if rounded.is_integer() and abs(rounded) < 1e15 else repr(rounded)


def _loki(path: Path, clock: _Clock) -> tuple[LokiAnswer, ...]:
    return tuple(
        LokiAnswer(re.compile(entry.match), tuple(_stream(item, clock) for item in entry.streams))
        for entry in _load_optional(path, _LOKI) or []
    )


def _stream(item: _Stream, clock: _Clock) -> LogStream:
    lines = [(time, clock.text(line, time)) for time, line in item.lines]
    for repeat in item.repeat:
        for index in range(repeat.count):
            time = repeat.at + index * repeat.every
            lines.append((time, clock.text(repeat.line.replace("{i}", str(repeat.start + index)), time)))
    lines.sort(key=lambda line: line[0])  # stable: lines written at the same second keep their order
    return LogStream(dict(item.stream), tuple((clock.at(time), line) for time, line in lines))


def _answer(answer: _Answer) -> Answer:
    return Answer(
        summary=answer.summary,
        probable_cause=answer.probable_cause,
        confidence=answer.confidence,
        evidence=tuple(answer.evidence),
        impact=answer.impact,
        next_steps=tuple(answer.next_steps),
        actions=tuple(ProposedAction(a.id, a.reason, dict(a.params)) for a in answer.actions),
    )


def _expectation(expect: _Expect) -> Expectation:
    return Expectation(
        runbook=expect.runbook,
        cause_keywords=tuple(expect.cause_keywords),
        allowed_actions=tuple(expect.allowed_actions),
        forbidden_actions=tuple(expect.forbidden_actions),
    )


# --- reading files ---------------------------------------------------------------------------------------

_Loaded = TypeVar("_Loaded")


def _load_optional(path: Path, adapter: TypeAdapter[_Loaded]) -> _Loaded | None:
    return _load(path, adapter) if path.exists() else None


def _load(path: Path, adapter: TypeAdapter[_Loaded]) -> _Loaded:
    """A YAML file validated by `adapter`; errors name the file and the field."""
    text = _read(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path}: is not valid YAML: {error}") from None
    return _parse(path, data, adapter.validate_python)


def _parse(path: Path, data: Any, parse: Callable[[Any], _Loaded]) -> _Loaded:
    try:
        return parse(data)
    except ValidationError as error:
        raise ScenarioError(f"{path}: {describe_error(error)}") from None
    except json.JSONDecodeError as error:
        raise ScenarioError(f"{path}: is not valid JSON: {error}") from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError(f"{path}: cannot be read: {error}") from None
