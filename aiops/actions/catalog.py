"""The action catalog, `runbooks/actions.yml`: every command aiops may run, reviewed in git like code.

```yaml
restart-service:
  description: Restart a systemd unit
  argv: [systemctl, restart, "{unit}"]     # argv, never a shell string
  params: {unit: {from: labels.service, pattern: '^[a-zA-Z0-9@._-]{1,64}$'}}
  target: labels.instance                   # resolved through the host inventory
  risk: high                                # read | low | high
  timeout: 60s
  output_cap: 64KiB                         # optional: most bytes kept of stdout and of stderr
  verify:                                   # optional: how success shows (default: the alerts resolve)
    query: up{instance="{{ labels.instance }}"} == 1   # PromQL that must return a series, labels escaped
    window: 5m                              # how long aiops watches after the execution
journal-errors:
  description: Recent error lines from the journal
  argv: [journalctl, --priority=err, --since=-1h, --no-pager, --lines=200]
  target: host:db-1                         # a fixed host of the inventory
  risk: read
  timeout: 20s
```

A parameter's value comes from an alert label (`labels.<name>`), an annotation (`annotations.<name>`) or the
model's proposal (`proposal`), and must match its `pattern` in full. Label values are untrusted, so a value is
put into its argv item literally — never through `str.format`, never re-read for placeholders — and the executor
quotes every item for the remote shell. `{{` and `}}` are a literal brace in an argv item.

`verify.query` is a runbook-style PromQL template (aiops/runbooks/render.py: every label value escaped inside its
string); the fix is verified when it returns at least one series within `verify.window`. Without a query, when
the incident's own alerts stop firing (Prometheus's `ALERTS`) or Alertmanager says they resolved.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aiops.i18n import message
from aiops.models import Text
from aiops.payload import problem
from aiops.runbooks.render import RenderError, render, sample_annotations, sample_labels
from aiops.units import Bytes, Seconds

Risk = Literal["read", "low", "high"]
DEFAULT_OUTPUT_CAP = 64 * 1024
ACTION_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_PARAM_NAME = re.compile(_NAME)
_SOURCE = re.compile(rf"(?:labels|annotations)\.{_NAME}|proposal")
_TARGET = re.compile(rf"labels\.{_NAME}|host:[^\s:]+")
# One scan of an argv item: an escaped brace, a placeholder, or a brace that is neither (an error).
_TOKEN = re.compile(r"\{\{|\}\}|\{(?P<name>" + _NAME + r")\}|[{}]")
_SHOWN_CHARS = 80
DEFAULT_VERIFY_WINDOW = 300.0


class CatalogError(Exception):
    """A catalog that cannot be used; each of `problems` reads `actions.yml: <action id>.<field>: reason`.

    `ids` are the action ids the file declares, broken ones included, so that a runbook naming a broken action
    is reported once, at the catalog, and not again as naming an unknown action."""

    def __init__(self, problems: list[str], ids: frozenset[str] = frozenset()) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.ids = ids


class ActionRefused(Exception):
    """An action that cannot be rendered for this alert; `reason` says which value is missing or unsafe."""

    def __init__(self, reason: Text) -> None:
        super().__init__(str(reason))
        self.reason = reason


@dataclass(frozen=True)
class Param:
    """Where one parameter's value comes from, and the pattern the whole value must match."""

    name: str
    source: str  # labels.<name> | annotations.<name> | proposal
    pattern: re.Pattern[str]
    # A value starting with "-" is refused unless the action says it may be one: a command would read it as an
    # option ("--force", "-rf"), whatever its pattern meant to allow.
    options: bool = False


@dataclass(frozen=True)
class Verify:
    """How an execution's success shows: `query` (a PromQL template) returning a series, or — None — the incident's
    alerts resolving; watched for `window` seconds."""

    query: str | None = None
    window: float = DEFAULT_VERIFY_WINDOW


@dataclass(frozen=True)
class Action:
    """One catalog entry; `argv` items may hold `{param}` placeholders, `target` is `labels.<name>` or `host:<name>`."""

    id: str
    description: str
    argv: tuple[str, ...]
    params: Mapping[str, Param]
    target: str
    risk: Risk
    timeout: float
    output_cap: int
    verify: Verify = Verify()


@dataclass(frozen=True)
class RenderedCommand:
    """An action filled in for one alert: the exact argv, and the target value still to resolve to a host."""

    action_id: str
    argv: tuple[str, ...]
    target: str
    risk: Risk
    timeout: float
    output_cap: int


class Catalog:
    """The actions of `actions.yml`, by id."""

    def __init__(self, actions: Mapping[str, Action]) -> None:
        self._actions = dict(actions)

    @classmethod
    def empty(cls) -> Catalog:
        """No actions: what a runbooks folder without `actions.yml` allows."""
        return cls({})

    def get(self, action_id: str) -> Action | None:
        return self._actions.get(action_id)

    def ids(self) -> list[str]:
        return sorted(self._actions)

    def __len__(self) -> int:
        return len(self._actions)


# --- loading ---------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ParamModel(_Strict):
    source: str = Field(alias="from")
    pattern: str
    options: bool = False

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not _SOURCE.fullmatch(value):
            raise ValueError(f"{value!r} must be labels.<name>, annotations.<name> or proposal")
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"{value!r} is not a regular expression: {error}") from None
        return value


class _VerifyModel(_Strict):
    query: Annotated[str, Field(min_length=1)] | None = None
    window: Annotated[Seconds, Field(gt=0, le=86400)] = DEFAULT_VERIFY_WINDOW

    @field_validator("query")
    @classmethod
    def _query(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            render(value, sample_labels(), "promql", annotations=sample_annotations())
        except RenderError as error:
            raise ValueError(str(error)) from None
        return value


class _ActionModel(_Strict):
    description: Annotated[str, Field(min_length=1)]
    argv: Annotated[list[str], Field(min_length=1)]
    params: dict[str, _ParamModel] = Field(default_factory=dict)
    target: str
    risk: Risk
    timeout: Annotated[Seconds, Field(gt=0)]
    output_cap: Annotated[Bytes, Field(gt=0)] = DEFAULT_OUTPUT_CAP
    verify: _VerifyModel = Field(default_factory=_VerifyModel)

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        if not _TARGET.fullmatch(value):
            raise ValueError(f"{value!r} must be labels.<name> (such as labels.instance) or host:<host name>")
        return value


class _UniqueKeyLoader(yaml.SafeLoader):
    """Refuses a repeated action id: YAML would silently keep the last one, not the one a reviewer read first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                break  # the base class reports an unhashable key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is defined twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_catalog(path: Path) -> Catalog:
    """Read and validate the catalog at `path`; raises `CatalogError` listing every problem.

    A missing file is an error too: whether no catalog means "no actions" (`Catalog.empty()`) is the caller's call.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError([f"{path.name}: cannot be read ({error.strerror or error})"]) from None
    except UnicodeDecodeError as error:
        raise CatalogError([f"{path.name}: is not UTF-8 text (byte {error.start})"]) from None
    return parse_catalog(text, path.name)


def parse_catalog(text: str, name: str = "actions.yml") -> Catalog:
    """Validate catalog YAML; problems are prefixed with `name`. Raises `CatalogError`."""
    try:
        loaded = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no Python objects
    except yaml.YAMLError as error:
        raise CatalogError([f"{name}: {_yaml_problem(error)}"]) from None
    if loaded is None:
        return Catalog.empty()
    if not isinstance(loaded, dict):
        raise CatalogError([f"{name}: must be a mapping of action id to action, not {type(loaded).__name__}"])
    actions: dict[str, Action] = {}
    problems: list[str] = []
    for key, value in loaded.items():
        action, found = _action(key, value)
        problems += [f"{name}: {problem}" for problem in found]
        if action is not None:
            actions[action.id] = action
    if problems:
        raise CatalogError(problems, frozenset(str(key) for key in loaded))
    return Catalog(actions)


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"is not valid YAML{where}: {getattr(error, 'problem', None) or error}"


def _action(key: object, value: object) -> tuple[Action | None, list[str]]:
    """The action under `key`, or None with the problems (each `<id>.<field>: reason`)."""
    action_id = str(key)
    if not isinstance(key, str) or not ACTION_ID.fullmatch(key):
        return None, [
            f"{action_id}: is not an action id: use 1 to 64 of a-z, 0-9 and '-', starting with a-z or 0-9"
        ]
    if not isinstance(value, dict):
        return None, [f"{action_id}: must be a mapping with description, argv, target, risk and timeout"]
    problems = [f"{action_id}.{found}" for found in _placeholder_problems(value)]
    try:
        model = _ActionModel.model_validate(value)
    except ValidationError as error:
        return None, problems + [f"{action_id}.{problem(item)}" for item in error.errors(include_url=False)]
    if problems:
        return None, problems
    return _build(action_id, model), []


def _placeholder_problems(raw: dict[Any, Any]) -> list[str]:
    """Every placeholder declared, every parameter used, and the program itself never a parameter.

    Checked on the raw entry, so these problems are reported together with the field errors."""
    argv, params = raw.get("argv"), raw.get("params") or {}
    if not isinstance(argv, list) or not isinstance(params, dict):
        return []  # the field errors say what is wrong
    named = {name for name in params if isinstance(name, str) and _PARAM_NAME.fullmatch(name)}
    problems = [
        f"params.{name}: is not a parameter name (letters, digits and _, not starting with a digit)"
        for name in params
        if name not in named
    ]
    used: set[str] = set()
    for index, item in enumerate(argv):
        if isinstance(item, str):
            names, stray = _scan(item)
            used |= names
            problems += _item_problems(index, item, names, stray, set(params))
    problems += [f"params.{name}: is not used in argv" for name in sorted(named - used)]
    return problems


def _item_problems(index: int, item: str, names: set[str], stray: bool, declared: set[str]) -> list[str]:
    field = f"argv[{index}]"
    problems = [
        f"{field}: placeholder {{{name}}} is not declared under params" for name in sorted(names - declared)
    ]
    if stray:
        problems.append(
            f"{field}: {item!r} has a stray brace; a placeholder is {{name}} and a literal brace is {{{{ or }}}}"
        )
    if index == 0 and names:
        # The program comes from the reviewed catalog, never from an alert.
        problems.append(f"{field}: the program must be written literally, not taken from a parameter")
    return problems


def _scan(item: str) -> tuple[set[str], bool]:
    """(placeholder names, whether a brace is neither a placeholder nor escaped) of one argv item."""
    names: set[str] = set()
    stray = False
    for token in _TOKEN.finditer(item):
        if token["name"] is not None:
            names.add(token["name"])
        elif token[0] in ("{", "}"):
            stray = True
    return names, stray


def _build(action_id: str, model: _ActionModel) -> Action:
    params = {
        name: Param(name, param.source, re.compile(param.pattern), param.options)
        for name, param in model.params.items()
    }
    return Action(
        id=action_id,
        description=model.description,
        argv=tuple(model.argv),
        params=params,
        target=model.target,
        risk=model.risk,
        timeout=model.timeout,
        output_cap=model.output_cap,
        verify=Verify(model.verify.query, model.verify.window),
    )


# --- rendering -------------------------------------------------------------------------------------------


def render_command(
    action: Action,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    proposal_params: Mapping[str, str] | None = None,
) -> RenderedCommand:
    """The argv and target of `action` for one alert; raises `ActionRefused` naming the value at fault.

    `proposal_params` are the values the model proposed, by parameter name; None when there is no proposal
    (evidence gathering), which refuses any `from: proposal` parameter.
    """
    values = {
        name: _value(action.id, param, labels, annotations, proposal_params)
        for name, param in action.params.items()
    }
    return RenderedCommand(
        action_id=action.id,
        argv=tuple(_fill(item, values) for item in action.argv),
        target=_target(action, labels),
        risk=action.risk,
        timeout=action.timeout,
        output_cap=action.output_cap,
    )


def _value(
    action_id: str,
    param: Param,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    proposal_params: Mapping[str, str] | None,
) -> str:
    kind, _, key = param.source.partition(".")
    if kind == "proposal":
        if proposal_params is None:
            raise ActionRefused(message("refusal_param_no_proposal", action=action_id, param=param.name))
        value = proposal_params.get(param.name)
    else:
        value = (labels if kind == "labels" else annotations).get(key)
    if value is None:
        raise ActionRefused(
            message("refusal_param_absent", action=action_id, param=param.name, source=param.source)
        )
    names = {"action": action_id, "param": param.name, "source": param.source, "value": _shown(value)}
    if value.startswith("-") and not param.options:
        raise ActionRefused(message("refusal_param_option", **names))
    if not param.pattern.fullmatch(value):
        raise ActionRefused(message("refusal_param_pattern", **names, pattern=repr(param.pattern.pattern)))
    return value


def _fill(item: str, values: Mapping[str, str]) -> str:
    # A replacement function's result is used as it is: no backslash or group processing, no second pass.
    def replace(token: re.Match[str]) -> str:
        if token["name"] is not None:
            return values[token["name"]]
        return token[0][0]  # `{{` → `{`, `}}` → `}`

    return _TOKEN.sub(replace, item)


def _target(action: Action, labels: Mapping[str, str]) -> str:
    if action.target.startswith("builtin:"):
        return action.target  # aiops's own actions (aiops/actions/builtin.py) act on a service, not a host
    if action.target.startswith("host:"):
        return action.target.removeprefix("host:")
    label = action.target.removeprefix("labels.")
    value = labels.get(label)
    if not value:
        raise ActionRefused(message("refusal_target_absent", action=action.id, label=label))
    return value


def _shown(value: str) -> str:
    shown = repr(value)
    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 1] + "…"
