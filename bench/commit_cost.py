"""Where an intake request's time goes, without HTTP: parse, dedup key, the commit, and plain sqlite3 for scale.

    .venv/bin/python bench/commit_cost.py

Uses the service's own code (`aiops.web.intake._commit` on an engine from `aiops.store.engine.create_engine`) on a
fresh SQLite file in a temporary directory, and counts the round trips to aiosqlite's thread per commit. About 10 s.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite.core
import payloads

from aiops.payload import WebhookPayload
from aiops.store import deliveries, migrate
from aiops.store.engine import DatabaseConfig, create_engine
from aiops.web.intake import _commit

COUNT = 2000


def per_call(label: str, function: Callable[[int], object], count: int = COUNT) -> None:
    started = time.perf_counter()
    for index in range(count):
        function(index)
    print(f"{label:<62} {(time.perf_counter() - started) / count * 1e6:8.1f} µs")


async def commits(directory: Path, bodies: list[str], concurrency: int) -> None:
    engine = create_engine(DatabaseConfig(url=f"sqlite:///{directory}/c{concurrency}.db"))
    await migrate.upgrade(engine)
    groups = [WebhookPayload.model_validate_json(body).to_group() for body in bodies]
    for index in range(20):  # warm-up: connections, statement cache
        await _commit(engine, groups[index], bodies[index])
    slots = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with slots:
            await _commit(engine, groups[index], bodies[index])

    started = time.perf_counter()
    if concurrency == 1:
        for index in range(20, len(bodies)):
            await _commit(engine, groups[index], bodies[index])
    else:
        await asyncio.gather(*(one(index) for index in range(20, len(bodies))))
    seconds = (time.perf_counter() - started) / (len(bodies) - 20)
    label = f"intake _commit (SQLAlchemy + aiosqlite), {concurrency} at a time"
    print(f"{label:<62} {seconds * 1e6:8.1f} µs  ({1 / seconds:.0f} commits/s)")
    await engine.dispose()


async def round_trips(directory: Path, body: str) -> Counter[str]:
    """How many times one commit hands work to the aiosqlite thread (each is a thread round trip)."""
    engine = create_engine(DatabaseConfig(url=f"sqlite:///{directory}/trips.db"))
    await migrate.upgrade(engine)
    group = WebhookPayload.model_validate_json(body).to_group()
    calls: Counter[str] = Counter()
    original = aiosqlite.core.Connection._execute

    async def counting(self: Any, function: Any, *args: Any, **kwargs: Any) -> Any:
        calls[getattr(function, "__qualname__", repr(function))] += 1
        return await original(self, function, *args, **kwargs)

    aiosqlite.core.Connection._execute = counting  # type: ignore[method-assign]
    try:
        await _commit(engine, group, body)
    finally:
        aiosqlite.core.Connection._execute = original  # type: ignore[method-assign]
        await engine.dispose()
    return calls


def plain_sqlite(directory: Path, bodies: list[str], synchronous: str) -> None:
    """The intake's two inserts in one transaction through the sqlite3 module: SQLite's own cost."""
    db = sqlite3.connect(directory / f"plain-{synchronous}.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE d (id INTEGER PRIMARY KEY, k TEXT UNIQUE, payload TEXT)")
    db.execute("CREATE TABLE j (id INTEGER PRIMARY KEY, payload TEXT)")

    def one(index: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO d (k, payload) VALUES (?, ?)", (str(index), bodies[index]))
        db.execute("INSERT INTO j (payload) VALUES (?)", ('{"delivery_id": 1}',))
        db.execute("COMMIT")

    per_call(f"plain sqlite3: BEGIN, 2 INSERTs, COMMIT, synchronous={synchronous}", one)
    db.close()


def main() -> None:
    template = payloads.template()
    bodies = [payloads.render(template, 9, 0, n).decode() for n in range(1, COUNT + 1)]
    groups = [WebhookPayload.model_validate_json(body).to_group() for body in bodies]
    per_call(
        "WebhookPayload.model_validate_json(...).to_group()",
        lambda i: WebhookPayload.model_validate_json(bodies[i]).to_group(),
    )
    per_call("deliveries.dedup_key", lambda i: deliveries.dedup_key(groups[i]))
    with tempfile.TemporaryDirectory(prefix="aiops-commit-cost-") as name:
        directory = Path(name)
        asyncio.run(commits(directory, bodies, 1))
        asyncio.run(commits(directory, bodies, 16))
        calls = asyncio.run(round_trips(directory, bodies[0]))
        detail = ", ".join(f"{call} {n}" for call, n in calls.items())
        print(f"{'round trips to the aiosqlite thread per commit':<62} {sum(calls.values()):8d}  ({detail})")
        plain_sqlite(directory, bodies, "FULL")
        plain_sqlite(directory, bodies, "NORMAL")


if __name__ == "__main__":
    main()
