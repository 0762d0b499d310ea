"""The ASGI application: routes, and a lifespan that builds and closes the services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.routing import Route

from aiops import service
from aiops.config import Settings
from aiops.web import approvals, callbacks, health, incidents, intake, openapi, remediation


def routes() -> list[Route]:
    return [
        Route("/webhook/alertmanager", intake.webhook, methods=["POST"]),
        Route("/api/v1/incidents", incidents.api_list),
        # Not `{incident_id:int}`: its int() fails on a path of 4300 digits, before any handler could answer 404.
        Route("/api/v1/incidents/{incident_id}", incidents.api_detail),
        Route("/", incidents.page_list),
        Route("/incidents/{incident_id}", incidents.page_detail),
        Route("/approvals/{token}", approvals.page, methods=["GET"]),
        Route("/approvals/{token}", approvals.decide, methods=["POST"]),
        *remediation.routes(),
        *callbacks.routes(),
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        Route("/metrics", health.metrics),
        Route("/openapi.json", openapi.openapi),
    ]


def create_app(
    settings: Settings, *, engine: AsyncEngine | None = None, workers: bool = True, migrated: bool = False
) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await service.start(settings, engine=engine, workers=workers, migrated=migrated)
        app.state.services = services
        try:
            yield
        finally:
            await services.close()

    return Starlette(routes=routes(), lifespan=lifespan)
