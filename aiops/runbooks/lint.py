"""`aiops runbooks lint`: everything wrong with a runbooks folder, found before an alert finds it.

Each problem is one line, `relative/path.md: field: reason`: files that do not parse (misspelt fields, bad
matchers, bad YAML), query templates that do not render against sample labels, action ids missing from the
catalog, evidence commands that are not read-only actions, two runbooks claiming the same alert with the same matchers (only the first could ever match), and
everything wrong with the catalog itself (`actions.yml: <action id>.<field>: reason`).
"""

from __future__ import annotations

from pathlib import Path

from aiops.actions.builtin import BUILTINS
from aiops.actions.catalog import CatalogError, load_catalog
from aiops.runbooks.library import RunbookLibrary
from aiops.runbooks.model import Runbook
from aiops.runbooks.render import Language, RenderError, render, sample_annotations, sample_labels

CATALOG = "actions.yml"


def catalog_ids(directory: Path) -> set[str] | None:
    """The action ids of `actions.yml` in the runbooks folder, or None when there is no catalog (yet).

    A broken catalog still names its ids (its problems are `catalog_problems`); one that cannot be read or parsed
    allows nothing."""
    path = directory / CATALOG
    if not path.is_file():
        return None
    try:
        return set(load_catalog(path).ids()) | set(BUILTINS)
    except CatalogError as error:
        return set(error.ids) | set(BUILTINS)


def changing_ids(directory: Path) -> set[str]:
    """The ids of the actions of `actions.yml` in `directory` (and built-ins) that change something: risk low or
    high, not read."""
    path = directory / CATALOG
    changing = {action_id for action_id, action in BUILTINS.items() if action.risk != "read"}
    if not path.is_file():
        return changing
    try:
        catalog = load_catalog(path)
    except CatalogError:
        return changing
    return changing | {
        action_id for action_id in catalog.ids() if (a := catalog.get(action_id)) and a.risk != "read"
    }


def catalog_problems(directory: Path) -> list[str]:
    """Everything wrong with `actions.yml` in the runbooks folder, as `actions.yml: <id>.<field>: reason`."""
    path = directory / CATALOG
    if not path.is_file():
        return []
    try:
        catalog = load_catalog(path)
    except CatalogError as error:
        return error.problems
    return [
        f"{CATALOG}: {action_id}: is the name of a built-in action; choose another id"
        for action_id in catalog.ids()
        if action_id in BUILTINS
    ]


def lint(directory: Path, actions: set[str] | None, catalog_dir: Path | None = None) -> list[str]:
    """Problems in the runbooks under `directory`; `actions` is the catalog's ids, or None to skip that check.

    The catalog is `actions.yml` in `catalog_dir` (default: `directory`); its own problems are reported only when
    it is `directory`'s, since a catalog borrowed from elsewhere is not what is being linted."""
    if not directory.is_dir():
        return [f"{directory}: is not a folder"]
    catalog_dir = directory if catalog_dir is None else catalog_dir
    own = catalog_dir.resolve() == directory.resolve()
    catalog = CATALOG if own else str(catalog_dir / CATALOG)
    library = RunbookLibrary(directory)
    problems = [
        f"{error.path.as_posix()}: {problem}" for error in library.problems() for problem in error.problems
    ]
    runbooks = library.runbooks()
    changing = changing_ids(catalog_dir)
    for runbook in runbooks:
        problems.extend(_templates(runbook))
        problems.extend(_evidence_commands(runbook, changing, catalog))
        if actions is not None:
            problems.extend(_actions(runbook, actions, catalog))
    problems.extend(_duplicate_claims(runbooks))
    if own:
        problems.extend(catalog_problems(directory))
    return sorted(problems, key=lambda problem: problem.split(": ", 1)[0])  # by file; stable within one


def _templates(runbook: Runbook) -> list[str]:
    checks: list[tuple[str, str, Language]] = [
        (f"evidence.metrics[{index}].query", metric.query, "promql")
        for index, metric in enumerate(runbook.metrics)
    ]
    checks += [
        (f"evidence.logs[{index}].loki", log.loki, "logql")
        for index, log in enumerate(runbook.logs)
        if log.loki is not None
    ]
    problems = []
    for field, template, language in checks:
        error = _render_error(template, language)
        if error is not None:
            problems.append(f"{runbook.path.as_posix()}: {field}: {error}")
    return problems


def _render_error(template: str, language: Language) -> str | None:
    try:
        render(template, sample_labels(), language, annotations=sample_annotations())
    except RenderError as error:
        return str(error)
    return None


def _actions(runbook: Runbook, actions: set[str], catalog: str) -> list[str]:
    used = [(f"actions[{index}]", action) for index, action in enumerate(runbook.actions)]
    used += [
        (f"evidence.logs[{index}].command", log.command)
        for index, log in enumerate(runbook.logs)
        if log.command is not None
    ]
    return [
        f"{runbook.path.as_posix()}: {field}: {action!r} is not an action in {catalog}"
        for field, action in used
        if action not in actions
    ]


def _evidence_commands(runbook: Runbook, changing: set[str], catalog: str) -> list[str]:
    """Evidence is gathered without asking anyone, so an evidence command must be a `risk: read` action."""
    return [
        f"{runbook.path.as_posix()}: evidence.logs[{index}].command: {log.command!r} is not risk: read in "
        f"{catalog}; evidence runs without an approval, so only read-only actions may gather it (list it under "
        "actions: to propose it instead)"
        for index, log in enumerate(runbook.logs)
        if log.command is not None and log.command in changing
    ]


def _duplicate_claims(runbooks: list[Runbook]) -> list[str]:
    """A runbook claiming an alert another (earlier in path order) claims with the same matchers."""
    first: dict[tuple[str, frozenset[str]], Runbook] = {}
    problems = []
    for runbook in runbooks:
        matchers = frozenset(str(matcher) for matcher in runbook.matchers)
        for index, alert in enumerate(runbook.alerts):
            claim = first.setdefault((alert, matchers), runbook)
            if claim is not runbook:
                shown = ", ".join(sorted(matchers)) or "no matchers"
                problems.append(
                    f"{runbook.path.as_posix()}: alerts[{index}]: {alert} is also claimed by "
                    f"{claim.path.as_posix()} with the same matchers ({shown}); only {claim.path.as_posix()} "
                    "can match"
                )
    return problems
