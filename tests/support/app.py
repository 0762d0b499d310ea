"""The app in-process over ASGI, sharing the test's event loop and the `engine` fixture's database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from aiops.config import Settings
from aiops.models import Proposal
from aiops.service import Services
from aiops.store import actions
from aiops.web.app import create_app

TOKEN = "webhook-token-0123456789"
# Unless a test names its own, an empty folder: the bundled runbooks/ must not change what other tests see.
NO_RUNBOOKS = Path(__file__).resolve().parents[1] / "data" / "no-runbooks"
FIRING = Path(__file__).resolve().parents[1] / "data" / "firing.json"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def settings_for(database_url: str, **sections: Any) -> Settings:
    base: dict[str, Any] = {
        "webhook": {"token": TOKEN},
        "database": {"url": database_url},
        "runbooks": {"dir": str(NO_RUNBOOKS)},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Settings.model_validate(base)


@asynccontextmanager
async def running(
    settings: Settings, engine: AsyncEngine, workers: bool = False
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """Without `workers`, a test runs the pipeline itself (`services.pipeline.run`); with them, the queue does."""
    app: Starlette = create_app(settings, engine=engine, workers=workers)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://aiops") as client:
            yield client, app.state.services


async def row_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        tables = ("deliveries", "jobs", "incidents", "alerts")
        return {t: (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one() for t in tables}


async def proposals(
    client: httpx.AsyncClient, services: Services, argvs: Sequence[tuple[str, ...]]
) -> list[dict[str, Any]]:
    """An incident from tests/data/firing.json, triaged, with one pending `restart-service` proposal on web-1 per
    argv; returns those proposals as stored."""
    answer = await client.post("/webhook/alertmanager", content=FIRING.read_bytes(), headers=AUTH)
    delivery = int(answer.json()["delivery"])
    await services.pipeline.run(delivery)
    wanted = [Proposal("restart-service", "web-1", argv, "high", "nginx stopped answering") for argv in argvs]
    async with services.engine.begin() as conn:
        incident = await conn.execute(
            text("SELECT incident_id FROM deliveries WHERE id = :id"), {"id": delivery}
        )
        await services.approvals.record(conn, incident.scalar_one(), delivery, wanted)
        return [p for p in await actions.pending(conn) if p["action_id"] == "restart-service"]
