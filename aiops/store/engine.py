"""Building the database engine from `database.url`: SQLite (WAL) by default, PostgreSQL when asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    kwargs: dict[str, Any] = {}
    if config.url == MEMORY:
        kwargs = {"poolclass": StaticPool}
    else:
        Path(config.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # SQLite has one writer. With one connection, transactions queue in order on the event loop; with
        # several, the losers sleep in SQLite's busy handler (1 ms growing to 100 ms) and tail latency explodes.
        kwargs = {"pool_size": 1, "max_overflow": 0}
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas(config.sqlite_busy_timeout_ms))
    event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


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
