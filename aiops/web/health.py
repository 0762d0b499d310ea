"""Liveness, readiness and metrics."""

from __future__ import annotations

import contextlib

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aiops.service import Services
from aiops.store import actions, guardrails, incidents, jobs, verifications


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the store answers; the queue's oldest age is reported for load balancers and humans."""
    services: Services = request.app.state.services
    try:
        async with services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            queue = await jobs.stats(conn)
    except Exception as failure:
        return JSONResponse({"status": "unready", "store": f"unreachable: {type(failure).__name__}"}, 503)
    return JSONResponse(
        {
            "status": "ready",
            "store": "ok",
            "queue": {
                "pending": queue.pending,
                "running": queue.running,
                "failed": queue.failed,
                "oldest_age_seconds": round(queue.oldest_age, 3),
            },
        }
    )


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    # A store that does not answer must not break the scrape: its gauges keep their last values.
    with contextlib.suppress(Exception):
        async with services.engine.connect() as conn:
            services.metrics.observe_store(
                await jobs.stats(conn),
                await incidents.count_by_status(conn),
                await actions.pending_stats(conn),
                (await guardrails.switch(conn)).paused,
            )
            services.metrics.observe_breaker(await verifications.breaker(conn) is not None)
    return Response(services.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")
