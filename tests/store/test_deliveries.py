"""Deliveries: a redelivery or repeat notification is recognised and creates no new work."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.payload import WebhookPayload
from aiops.pipeline.correlate import correlate
from aiops.store import deliveries
from tests.conftest import DATA


async def record(engine: AsyncEngine, name: str = "firing.json") -> deliveries.Receipt:
    text_ = (DATA / name).read_text()
    async with engine.begin() as conn:
        return await deliveries.record(conn, WebhookPayload.model_validate_json(text_).to_group(), text_)


async def test_a_repeat_updates_the_open_incident(engine: AsyncEngine) -> None:
    first = await record(engine)
    await correlate(engine, first.delivery_id)
    repeat = await record(engine)
    assert first.is_new and not repeat.is_new and repeat.delivery_id == first.delivery_id
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT repeats FROM incidents"))).one()
        times = (await conn.execute(text("SELECT times_received FROM deliveries"))).scalar_one()
        jobs = (await conn.execute(text("SELECT count(*) FROM jobs"))).scalar_one()
    assert (row.repeats, times, jobs) == (1, 2, 1)


def test_dedup_key_ignores_annotations_and_order() -> None:
    group = WebhookPayload.model_validate_json((DATA / "firing.json").read_text()).to_group()
    resolved = WebhookPayload.model_validate_json((DATA / "resolved.json").read_text()).to_group()
    assert deliveries.dedup_key(group) != deliveries.dedup_key(resolved)
    changed = WebhookPayload.model_validate_json(
        (DATA / "firing.json").read_text().replace("Disk is almost full", "Disk is nearly full")
    ).to_group()
    assert deliveries.dedup_key(group) == deliveries.dedup_key(changed)
