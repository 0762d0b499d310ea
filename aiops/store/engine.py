"""Building the database engine from `database.url`: SQLite (WAL) by default, PostgreSQL when asked."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite
from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

MEMORY = "sqlite:///:memory:"


class DatabaseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "sqlite:///data/aiops.db"
    pool_size: int = 5
    # How long a SQLite writer waits for the file lock before the write fails.
    sqlite_busy_timeout_ms: int = 5000

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        driver_url(value)
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


def driver_url(url: str) -> str:
    """`sqlite:///path` → aiosqlite, `postgresql://…` → asyncpg; anything else is a configuration error."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(
            f"{url!r} is not a database URL (sqlite:///data/aiops.db or postgresql://user@host/db)"
        )
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return f"sqlite+aiosqlite://{rest}"
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"unsupported database scheme {scheme!r}; use sqlite:// or postgresql://")


def create_engine(config: DatabaseConfig) -> AsyncEngine:
    url = driver_url(config.url)
    if not config.is_sqlite:
        return create_async_engine(url, pool_size=config.pool_size, pool_pre_ping=True)
    path = config.url.removeprefix("sqlite:///")
    kwargs: dict[str, Any] = {"async_creator": _connector(path, config.sqlite_busy_timeout_ms)}
    if config.url == MEMORY:
        kwargs["poolclass"] = StaticPool
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # SQLite has one writer. With one connection, transactions queue in order on the event loop; with
        # several, the losers sleep in SQLite's busy handler (1 ms growing to 100 ms) and tail latency explodes.
        kwargs.update(pool_size=1, max_overflow=0)
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas(config.sqlite_busy_timeout_ms))
    event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


class _Connection(aiosqlite.Connection):
    """aiosqlite, with what cannot wait left on the event loop.

    aiosqlite hands every call to its thread and back: three or four hand-offs per statement, each costing more
    than what SQLite does for it (a statement: 0.57 ms through the thread, 0.016 ms in SQLite). Only what can wait
    goes to the thread: connecting, committing a write (an fsync), and taking the write lock when another process holds
    it (`BEGIN IMMEDIATE` then waits, up to the busy timeout). Inside a transaction this connection holds the write
    lock, so its statements never wait for anyone and run where the caller is; so do cursors and rollbacks (which
    write nothing). One caller at a time uses the connection either way: the pool lends it to one, who awaits each
    call."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], busy_timeout_ms: int) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._busy_timeout_ms = busy_timeout_ms
        self._changes_at_begin = -1  # `total_changes` when the open transaction began

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        connection = self._connection
        if connection is not None:
            if args and getattr(fn, "__name__", "") == "execute" and str(args[0]).startswith("BEGIN"):
                self._changes_at_begin = connection.total_changes
                if self._begun(connection, fn, *args):
                    return None
            elif _here(connection, fn) or self._read_only_commit(connection, fn):
                return fn(*args, **kwargs)
        return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    def _read_only_commit(self, connection: sqlite3.Connection, fn: Callable[..., Any]) -> bool:
        """The commit of a transaction that changed no row: it writes nothing to the WAL, so there is nothing to
        fsync and nothing to wait for. (DDL changes no row either; its commit then blocks the loop for one fsync,
        which only start-up's migrations do.)"""
        return (
            getattr(fn, "__self__", None) is connection
            and getattr(fn, "__name__", "") == "commit"
            and connection.total_changes == self._changes_at_begin
        )

    def _begun(self, connection: sqlite3.Connection, execute: Callable[..., Any], *args: Any) -> bool:
        """Take the write lock here if it is free; False (nothing done) when someone holds it."""
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            execute(*args)
        except sqlite3.OperationalError:
            return False  # locked: the thread waits for it
        finally:
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        return True


def _here(connection: sqlite3.Connection, fn: Callable[..., Any]) -> bool:
    """A call that cannot wait for anyone: a cursor or a rollback, or a statement in this connection's own
    write-locked transaction (not a script: one could commit and begin anything)."""
    name, owner = getattr(fn, "__name__", ""), getattr(fn, "__self__", None)
    if owner is connection:
        return name in ("cursor", "rollback")
    return connection.in_transaction and isinstance(owner, sqlite3.Cursor) and name != "executescript"


def _connector(path: str, busy_timeout_ms: int) -> Callable[[], Any]:
    async def connect() -> aiosqlite.Connection:
        # The thread opens it and the loop uses it too, never at the same time (see `_Connection`).
        opened = _Connection(lambda: sqlite3.connect(path, check_same_thread=False), busy_timeout_ms)
        return await opened

    return connect


def _begin_immediate(connection: Any) -> None:
    # Take SQLite's write lock when the transaction starts: a read that later upgrades to a write fails at once
    # with SQLITE_BUSY under WAL instead of waiting, and DDL becomes transactional too.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = (
            None  # the driver must not issue its own BEGIN; see _begin_immediate
        )
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, not only a crash of the process; the webhook promises that.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect
