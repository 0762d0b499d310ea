"""Incidents in the store: the past incidents of an alert on one target, as the history source reads them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.pipeline.correlate import correlate
from aiops.store import incidents
from tests.pipeline.test_correlate import alert, deliver


async def test_past_incidents_are_those_of_the_target(engine: AsyncEngine) -> None:
    """Labels are matched on their value exactly, whatever characters it holds, never on a part of it."""
    targets = ["wéb-1:9100", "wéb-1:91000", 'say "wéb-1:9100"', "wéb-1:9100"]
    opened = []
    for n, target in enumerate(targets):
        labelled = alert(f"a{n}")
        labelled["labels"]["instance"] = target
        opened.append((await correlate(engine, await deliver(engine, labelled, key=f"g{n}"))).incident.id)
    async with engine.connect() as conn:
        found = await incidents.past(conn, "HostHighCpuLoad", 10**6, ("instance", "wéb-1:9100"), 5)
        anywhere = await incidents.past(conn, "HostHighCpuLoad", 10**6, None, 5)
    assert [item["id"] for item in found] == [opened[3], opened[0]]
    assert found[0]["alert_labels"][0]["instance"] == "wéb-1:9100"
    assert [item["id"] for item in anywhere] == opened[::-1]
