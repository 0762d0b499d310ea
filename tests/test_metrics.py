"""The metrics alerting rules watch exist from the start, at zero, so that the first failure is an increase."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


async def test_failure_outcomes_start_at_zero(app_for: Callable[..., Any]) -> None:
    async with app_for() as (client, _):
        metrics = (await client.get("/metrics")).text
    for series in (
        'aiops_llm_calls_total{outcome="error"} 0.0',
        'aiops_llm_calls_total{outcome="invalid"} 0.0',
        'aiops_executions_total{outcome="failed"} 0.0',
        'aiops_executions_total{outcome="unknown"} 0.0',
        'aiops_notifications_total{channel="console",outcome="failed"} 0.0',
        "aiops_approvals_pending 0.0",
    ):
        assert series in metrics.splitlines(), series
