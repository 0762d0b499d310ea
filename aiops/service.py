"""Assembling the running service from the settings: clients, plug-ins, pipeline and workers.

Everything with a connection or a thread is built here, inside the application's lifespan, and closed here.
The tables below are the one place that says which channels and sources exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.channels import Channel
from aiops.channels.console import ConsoleChannel
from aiops.config import Settings
from aiops.metrics import Metrics
from aiops.pipeline.diagnose import OfflineDiagnoser
from aiops.pipeline.match import RunbookMatcher
from aiops.pipeline.runner import Pipeline, Stages
from aiops.queue import WorkerPool
from aiops.sources import Source
from aiops.sources.history import HistorySource
from aiops.sources.prometheus import PrometheusSource
from aiops.store import migrate
from aiops.store.deliveries import TRIAGE
from aiops.store.engine import create_engine
from aiops.templating import build_environment


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    metrics: Metrics
    templates: Environment
    http: httpx.AsyncClient
    pipeline: Pipeline
    pool: WorkerPool | None = None
    refusal_logged_at: float | None = None  # when intake last logged refused credentials

    def wake_workers(self) -> None:
        if self.pool is not None:
            self.pool.wake()

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.stop()
        await self.http.aclose()
        await self.engine.dispose()


def build_channels(settings: Settings, templates: Environment) -> list[Channel]:
    channels: list[Channel] = []
    if settings.channels.console.enabled:
        channels.append(ConsoleChannel(settings.channels.console, templates))
    return channels


def build_sources(settings: Settings, http: httpx.AsyncClient, engine: AsyncEngine) -> list[Source]:
    sources: list[Source] = []
    if settings.prometheus.url:
        sources.append(PrometheusSource(settings.prometheus, http))
    if settings.history.enabled:
        sources.append(HistorySource(settings.history, engine))
    return sources


async def start(
    settings: Settings, *, engine: AsyncEngine | None = None, workers: bool = True, migrated: bool = False
) -> Services:
    """Build the services, migrate the store (unless the caller just did), and start working the queue."""
    engine = engine or create_engine(settings.database)
    if not migrated:
        await migrate.upgrade(engine)
    metrics = Metrics()
    templates = build_environment(settings.server.language)
    http = httpx.AsyncClient(follow_redirects=False)
    offline = OfflineDiagnoser(templates)
    stages = Stages(
        sources=build_sources(settings, http, engine),
        diagnoser=offline,
        offline=offline,
        channels=build_channels(settings, templates),
        runbooks=RunbookMatcher(settings.runbooks.dir),
    )
    pipeline = Pipeline(engine, stages, metrics, settings.server.base_url)
    services = Services(settings, engine, metrics, templates, http, pipeline)
    if workers:
        services.pool = WorkerPool(engine, settings.queue, {TRIAGE: pipeline.handle})
        services.pool.start()
    return services
