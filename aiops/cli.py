"""The `aiops` command: serve, check, replay, db upgrade, runbooks, approvals, audit, remediation, incidents,
hash-password.

A user's mistake (bad configuration, unreadable payload, a folder that is not one) ends with a message naming the
key, field or argument and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from aiops import __version__, cli_actions, cli_remediation, logs
from aiops.config import ConfigError, Settings, destinations, load_settings
from aiops.models import AlertGroup
from aiops.payload import WebhookPayload, describe_error

USAGE_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except ConfigError as error:
        print("aiops: the configuration is not valid:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return USAGE_ERROR
    except ArgumentError as error:
        print(f"aiops: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiops", description="Alertmanager webhook receiver and AIOps service"
    )
    parser.add_argument("--version", action="version", version=f"aiops {__version__}")
    parser.add_argument(
        "--config", type=Path, help="YAML configuration file (default: $AIOPS_CONFIG, else built-in)"
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    sub.add_parser("serve", help="run the service").set_defaults(command=serve)
    sub.add_parser("check", help="validate the configuration; exit 2 naming the key at fault").set_defaults(
        command=check
    )
    replay_parser = sub.add_parser(
        "replay", help="run the pipeline on a saved payload and print what would be posted"
    )
    replay_parser.add_argument("payload", type=Path, metavar="PAYLOAD")
    replay_parser.set_defaults(command=replay)
    db = sub.add_parser("db", help="database maintenance").add_subparsers(required=True, metavar="ACTION")
    db.add_parser("upgrade", help="apply pending schema migrations").set_defaults(command=db_upgrade)
    books = sub.add_parser("runbooks", help="for runbook authors").add_subparsers(
        required=True, metavar="ACTION"
    )
    lint_parser = books.add_parser("lint", help="check every runbook; exit 1 naming each problem")
    lint_parser.add_argument(
        "dir", nargs="?", type=Path, metavar="DIR", help="the runbooks folder (default: runbooks.dir)"
    )
    lint_parser.set_defaults(command=runbooks_lint)
    match_parser = books.add_parser("match", help="which runbook each alert of a payload matches, and why")
    match_parser.add_argument("payload", type=Path, metavar="PAYLOAD")
    match_parser.add_argument(
        "--runbooks", type=Path, metavar="DIR", help="the runbooks folder (default: runbooks.dir)"
    )
    match_parser.set_defaults(command=runbooks_match)
    sub.add_parser("hash-password", help="hash a password (viewer, approver) read from stdin").set_defaults(
        command=hash_password
    )
    cli_actions.add_commands(sub, _settings)
    cli_remediation.add_commands(sub, _settings)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from aiops.web.app import create_app

    settings = _settings(args)
    logs.configure(settings.secrets())
    log = logging.getLogger("aiops")
    try:
        for version in asyncio.run(_migrate(settings)):
            log.info("applied schema migration %04d", version)
    except Exception as error:
        log.error("the store at database.url cannot be opened or migrated: %s", error)
        return 1
    if settings.server.is_loopback is False and not settings.webhook.has_credentials:
        log.warning(
            "listening on %s with an unauthenticated webhook (webhook.allow_unauthenticated)",
            settings.server.listen,
        )
    _log_pricing(settings, log)
    log.info("aiops %s listening on http://%s", __version__, settings.server.listen)
    config = uvicorn.Config(
        create_app(settings, migrated=True),
        host=settings.server.host,
        port=settings.server.port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(settings.queue.shutdown_grace) + 5,
    )
    # uvicorn handles SIGTERM (graceful shutdown), then re-raises it to the handler that was there before it.
    # That handler ends the process normally, so a graceful stop exits 0 instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    uvicorn.Server(config).run()
    log.info("stopped")
    return 0


def _log_pricing(settings: Settings, log: logging.Logger) -> None:
    """How the model's cost will be counted, when it is not by a price someone set."""
    llm = settings.llm
    if not llm.enabled:
        return
    if llm.is_local and llm.local is None:
        log.info(
            "llm.model %s at %s counts as a local model, no cost (llm.local: false if it is a paid API)",
            llm.model,
            llm.base_url,
        )
    elif llm.price() is None:
        log.warning(
            "llm.model %s has no price: its cost is shown as unknown and its tokens are counted in "
            "aiops_llm_unpriced_tokens_total; set llm.prices, or llm.local: true for a model on your own machines",
            llm.model,
        )


async def _migrate(settings: Settings) -> list[int]:
    from aiops.store import migrate
    from aiops.store.engine import create_engine

    engine = create_engine(settings.database)
    try:
        return [migration.version for migration in await migrate.upgrade(engine)]
    finally:
        await engine.dispose()


def check(args: argparse.Namespace) -> int:
    from aiops.runbooks.lint import catalog_ids, lint

    settings = _settings(args)
    folder = settings.runbooks.dir
    problems = lint(folder, catalog_ids(folder)) if folder.is_dir() else []
    problems += _unreachable_targets(settings)
    if problems:
        raise ConfigError([f"runbooks.dir: {folder}/{problem}" for problem in problems])
    where = "webhook authenticated" if settings.webhook.has_credentials else "webhook open"
    print(
        f"configuration OK: listen {settings.server.listen}, {where}, database {settings.database.url.split(':')[0]}"
    )
    outbound = destinations(settings)
    if outbound:
        # No proxy variable of the environment counts: a destination uses the one its own section names.
        print("outbound connections:")
        for destination in outbound:
            print(f"  {destination.name}: {destination.origin} {destination.route}")
    return 0


def _unreachable_targets(settings: Settings) -> list[str]:
    """Catalog actions whose fixed `host:` target is not in `hosts:`: they could never run."""
    from aiops.actions.catalog import CatalogError, load_catalog

    path = settings.runbooks.dir / "actions.yml"
    try:
        catalog = load_catalog(path) if path.is_file() else None
    except CatalogError:
        return []  # reported by lint
    problems = []
    for action_id in catalog.ids() if catalog else []:
        action = catalog.get(action_id) if catalog else None
        if action and action.target.startswith("host:") and action.target[5:] not in settings.hosts:
            problems.append(
                f"actions.yml: {action_id}.target: {action.target[5:]!r} is not a host under `hosts:`; it can never run"
            )
    return problems


def replay(args: argparse.Namespace) -> int:
    from aiops.replay import replay as run_replay

    settings = _settings(args)
    logs.configure(settings.secrets(), level="WARNING")
    text, _group = _read_payload(args.payload)
    asyncio.run(run_replay(settings, text, sys.stdout))
    return 0


class ArgumentError(Exception):
    """A command-line argument naming what cannot be used: a payload that cannot be read or is not an Alertmanager
    payload, a folder that is not one. The message starts with the argument's name."""


def _read_payload(path: Path) -> tuple[str, AlertGroup]:
    try:
        text = path.read_text(encoding="utf-8")
        return text, WebhookPayload.model_validate_json(text).to_group()
    except OSError as error:
        raise ArgumentError(f"PAYLOAD {path}: cannot read it: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ArgumentError(f"PAYLOAD {path}: is not UTF-8 text") from None
    except ValidationError as error:
        raise ArgumentError(
            f"PAYLOAD {path}: is not an Alertmanager payload: {describe_error(error)}"
        ) from None


def _folder(path: Path, argument: str) -> Path:
    if not path.exists():
        raise ArgumentError(f"{argument} {path}: does not exist")
    if not path.is_dir():
        raise ArgumentError(f"{argument} {path}: is not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ArgumentError(f"{argument} {path}: cannot be read (permission denied)")
    return path


def db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        applied = asyncio.run(_migrate(settings))
    except Exception as error:
        print(f"aiops: database.url cannot be migrated: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"applied": applied}) if applied else "the database is up to date")
    return 0


def runbooks_lint(args: argparse.Namespace) -> int:
    from aiops.runbooks.lint import catalog_ids, lint

    folder = _settings(args).runbooks.dir if args.dir is None else _folder(args.dir, "DIR")
    catalog_dir = folder if args.dir is None else _catalog_for(folder, args)
    problems = lint(folder, catalog_ids(catalog_dir) if catalog_dir else None, catalog_dir)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {folder}", file=sys.stderr)
        return 1
    print(f"{folder}: all runbooks are fine")
    return 0


def _catalog_for(folder: Path, args: argparse.Namespace) -> Path | None:
    """The folder whose `actions.yml` the runbooks of DIR are checked against: DIR's own, as the service would
    read it; else the configured `runbooks.dir`'s (`./runbooks` when nothing is configured: the bundled one in a
    checkout), said on stderr; else none, and action ids are not checked. A configuration that cannot be loaded
    does not stop the lint: it only has no catalog to lend."""
    from aiops.runbooks.lint import CATALOG

    if (folder / CATALOG).is_file():
        return folder
    try:
        configured = _settings(args).runbooks.dir
    except ConfigError as error:
        _note(
            f"{folder} has no {CATALOG} and the configuration cannot be loaded ({error.problems[0]}); not checking action ids"
        )
        return None
    if (configured / CATALOG).is_file():
        _note(f"{folder} has no {CATALOG}; checking action ids against {configured / CATALOG} (runbooks.dir)")
        return configured
    _note(f"neither {folder} nor runbooks.dir ({configured}) has {CATALOG}; not checking action ids")
    return None


def _note(message: str) -> None:
    print(f"aiops: {message}", file=sys.stderr)


def runbooks_match(args: argparse.Namespace) -> int:
    from aiops.runbooks.explain import explain

    folder = _folder(args.runbooks, "--runbooks") if args.runbooks else _settings(args).runbooks.dir
    _text, group = _read_payload(args.payload)
    print(explain(folder, group.alerts))
    return 0


def hash_password(args: argparse.Namespace) -> int:
    from aiops.passwords import hash_password as make_hash

    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password:
        print("aiops: an empty password cannot be hashed", file=sys.stderr)
        return USAGE_ERROR
    print(make_hash(password))
    return 0
