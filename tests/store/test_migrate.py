from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.store import migrate


async def test_upgrade_is_idempotent(engine: AsyncEngine) -> None:
    assert await migrate.upgrade(engine) == []
    assert await migrate.current_version(engine) == max(m.version for m in migrate.migrations())


async def test_schema_has_the_tables(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    expected = {
        "aiops_schema",
        "deliveries",
        "incidents",
        "alerts",
        "triages",
        "notifications",
        "events",
        "jobs",
    }
    assert expected <= names
