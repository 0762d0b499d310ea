"""Assembling the running service from the settings: clients, plug-ins, pipeline and workers.

Everything with a connection or a thread is built here, inside the application's lifespan, and closed here.
The tables below are the one place that says which channels and sources exist.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.actions.approvals import EXECUTE, Approvals
from aiops.actions.builtin import BUILTINS
from aiops.actions.catalog import Verify
from aiops.actions.execute import Executions
from aiops.actions.live import LiveCatalog
from aiops.actions.verify import VERIFY, Verifier, VerifyOf
from aiops.channels import Channel
from aiops.channels.console import ConsoleChannel
from aiops.channels.decisions import Decisions
from aiops.channels.inbound import Deciders, Inbound
from aiops.channels.registry import Configured, Kind
from aiops.chat.answers import REPLY, Answers, Reach
from aiops.chat.ask import ModelAsker
from aiops.chat.listener import ASK, QUESTION, ChatListener
from aiops.config import Settings
from aiops.grafana.annotations import ANNOTATE, Annotations
from aiops.i18n import message
from aiops.inventory import Inventory
from aiops.llm.client import LlmClient
from aiops.llm.diagnoser import ActionLookup, LlmDiagnoser
from aiops.llm.investigate import Investigator, Toolbox
from aiops.llm.prompt import ActionInfo, PromptBuilder
from aiops.metrics import Metrics
from aiops.pipeline.diagnose import OfflineDiagnoser
from aiops.pipeline.match import RunbookMatcher
from aiops.pipeline.notify import DELIVER
from aiops.pipeline.outbox import Outbox
from aiops.pipeline.plan import Planner
from aiops.pipeline.runner import ANNOUNCE, DIAGNOSE, Pipeline, Stages
from aiops.proxy import HttpClients
from aiops.queue import Dedicated, Handler, WorkerPool
from aiops.runbooks.lint import CATALOG
from aiops.sources import Source
from aiops.sources.commands import CommandSource
from aiops.sources.history import HistorySource
from aiops.sources.loki import LokiSource
from aiops.sources.prometheus import PrometheusSource
from aiops.ssh import SshExecutor
from aiops.store import migrate
from aiops.store.deliveries import TRIAGE
from aiops.store.engine import create_engine
from aiops.templating import build_environment

log = logging.getLogger("aiops.service")


@dataclass(frozen=True)
class Receiving:
    """A configured channel's inbound side, with the kind whose routes lead to it."""

    kind: Kind[Any, Any]
    name: str  # the channel's
    inbound: Inbound


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    metrics: Metrics
    templates: Environment
    clients: HttpClients  # `http` for destinations reached directly, one more per section with a proxy
    pipeline: Pipeline
    approvals: Approvals
    handlers: dict[str, Handler] = field(default_factory=dict)  # job kind → what works it
    llm: LlmClient | None = None
    pool: WorkerPool | None = None
    refusal_logged_at: float | None = None  # when intake last logged refused credentials
    sweeper: asyncio.Task[None] | None = None  # expires unanswered approvals
    # Where card clicks arrive, per channel that takes them: routes of the web app, connections of their own.
    inbound: list[Receiving] = field(default_factory=list)
    chat: ChatListener | None = None  # where chat messages to aiops go; None: `chat.enabled` is false

    @property
    def http(self) -> httpx.AsyncClient:
        return self.clients.direct

    @property
    def deciders(self) -> Deciders:
        """What inbound sides decide clicks with."""
        return Deciders(self.decisions, self.templates, self.chat)

    @property
    def decisions(self) -> Decisions:
        """The one path from a click, a link or a command to a decision; answered with the card as it now stands."""
        return Decisions(self.engine, self.approvals, self.pipeline.card)

    def receiving(self, kind: Kind[Any, Any]) -> Inbound | None:
        """The inbound side of the first configured channel of `kind`, where its routes lead."""
        return next((item.inbound for item in self.inbound if item.kind is kind), None)

    def wake_workers(self) -> None:
        if self.pool is not None:
            self.pool.wake(TRIAGE)  # only the lane that triages: a new delivery is nothing for the model yet

    async def close(self) -> None:
        for receiving in self.inbound:
            await receiving.inbound.stop()  # nothing to do for one never started
        if self.sweeper is not None:
            self.sweeper.cancel()
            await asyncio.gather(self.sweeper, return_exceptions=True)
        if self.pool is not None:
            await self.pool.stop()
        if self.llm is not None:
            await self.llm.close()
        await self.clients.aclose()
        await self.engine.dispose()


def build_channels(
    settings: Settings, templates: Environment, clients: HttpClients
) -> list[tuple[Configured | None, Channel]]:
    """The console, and a channel per chat section the configuration names (the kinds of the registry), each
    with the HTTP client its `proxy` chose; paired with where it is configured (None for the console)."""
    config = settings.channels
    channels: list[tuple[Configured | None, Channel]] = []
    if config.console.enabled:
        channels.append((None, ConsoleChannel(config.console, templates)))
    for item in config.configured():
        http = clients.for_section(item.proxied, f"{item.where}.proxy")
        channels.append((item, item.kind.build(item.config, templates, http)))
    return channels


def build_inbound(built: Sequence[tuple[Configured | None, Channel]], deciders: Deciders) -> list[Receiving]:
    """The inbound side of each channel whose kind receives clicks."""
    found: list[Receiving] = []
    for item, channel in built:
        if item is None or item.kind.inbound is None:
            continue
        inbound = item.kind.inbound(item.config, channel, deciders)
        if inbound is not None:
            found.append(Receiving(item.kind, channel.name, inbound))
    return found


def build_sources(
    settings: Settings,
    clients: HttpClients,
    engine: AsyncEngine,
    catalog: LiveCatalog,
    inventory: Inventory,
    executor: SshExecutor,
) -> list[Source]:
    sources: list[Source] = []
    if settings.prometheus.url:
        http = clients.for_section(settings.prometheus, "prometheus.proxy")
        sources.append(PrometheusSource(settings.prometheus, http))
    if settings.loki.url:
        sources.append(LokiSource(settings.loki, clients.for_section(settings.loki, "loki.proxy")))
    if settings.hosts:
        sources.append(CommandSource(catalog, inventory, executor))
    if settings.history.enabled:
        sources.append(HistorySource(settings.history, engine))
    return sources


def build_diagnoser(
    settings: Settings,
    llm: LlmClient,
    templates: Environment,
    metrics: Metrics,
    catalog: LiveCatalog,
    investigator: Investigator | None,
) -> LlmDiagnoser:
    language = settings.llm.language or settings.server.language
    prompts = PromptBuilder(templates, budget=settings.llm.prompt_budget, language=language)
    return LlmDiagnoser(llm, prompts, metrics, action_lookup(catalog), investigator)


def build_toolbox(settings: Settings, sources: list[Source], runbooks: RunbookMatcher) -> Toolbox:
    """The read-only tools of the investigation loop and of chat questions, each reaching the source the evidence
    stage uses."""
    found = {source.name: source for source in sources}
    prometheus, loki = found.get("prometheus"), found.get("loki")
    commands, history = found.get("ssh"), found.get("history")
    return Toolbox(
        promql=prometheus.run_query if isinstance(prometheus, PrometheusSource) else None,
        logql=loki.run_query if isinstance(loki, LokiSource) else None,
        command=commands.run_query if isinstance(commands, CommandSource) else None,
        runbook=runbooks.read,
        past_incidents=history.gather if isinstance(history, HistorySource) else None,
    )


def build_investigator(settings: Settings, toolbox: Toolbox, templates: Environment) -> Investigator | None:
    """The investigation loop of diagnoses (`llm.investigate`)."""
    if not settings.llm.investigate:
        return None
    return Investigator(
        toolbox, templates, max_steps=settings.llm.max_steps, output_cap=settings.llm.tool_output_cap
    )


def build_asker(
    settings: Settings, llm: LlmClient | None, toolbox: Toolbox, templates: Environment, metrics: Metrics
) -> ModelAsker | None:
    """What answers chat questions with the model, within `chat.max_steps` and `chat.token_budget`."""
    if llm is None:
        return None
    investigator = Investigator(
        toolbox, templates, max_steps=settings.chat.max_steps, output_cap=settings.llm.tool_output_cap
    )
    return ModelAsker(llm, investigator, templates, metrics, settings.chat, settings.server.language)


def action_lookup(catalog: LiveCatalog) -> ActionLookup:
    """Catalog actions as the model is told about them, read when asked so that catalog changes apply at once."""

    def lookup(action_id: str) -> ActionInfo | None:
        action = BUILTINS.get(action_id) or catalog.current().get(action_id)
        if action is None:
            return None
        asked = tuple(name for name, param in action.params.items() if param.source == "proposal")
        return ActionInfo(action.id, action.risk, action.description, asked)

    return lookup


def verify_of(catalog: LiveCatalog) -> VerifyOf:
    """How each catalog action's success shows, read when asked; aiops's own actions (a silence, an
    acknowledgement) fix nothing, so they are not verified."""

    def lookup(action_id: str) -> Verify | None:
        action = None if action_id in BUILTINS else catalog.current().get(action_id)
        return action.verify if action is not None else None

    return lookup


async def start(
    settings: Settings, *, engine: AsyncEngine | None = None, workers: bool = True, migrated: bool = False
) -> Services:
    """Build the services, migrate the store (unless the caller just did), and start working the queue."""
    engine = engine or create_engine(settings.database)
    if not migrated:
        await migrate.upgrade(engine)
    metrics = Metrics()
    templates = build_environment(settings.server.language, settings.channels.templates)
    clients = HttpClients()
    offline = OfflineDiagnoser(templates)
    llm = LlmClient(settings.llm, on_throttle=metrics.llm_throttled.observe) if settings.llm.enabled else None
    catalog = LiveCatalog(settings.runbooks.dir / CATALOG)
    inventory = Inventory(settings.hosts)
    executor = SshExecutor(inventory)
    sources = build_sources(settings, clients, engine, catalog, inventory, executor)
    runbooks = RunbookMatcher(settings.runbooks.dir)
    approvals = Approvals(engine, settings.remediation, metrics)
    toolbox = build_toolbox(settings, sources, runbooks)
    investigator = build_investigator(settings, toolbox, templates)
    grafana = clients.for_section(settings.grafana, "grafana.proxy")
    annotations = Annotations(settings.grafana, templates, settings.server.base_url, grafana, metrics)
    built = build_channels(settings, templates, clients)
    stages = Stages(
        sources=sources,
        diagnoser=build_diagnoser(settings, llm, templates, metrics, catalog, investigator)
        if llm
        else offline,
        offline=offline,
        channels=[channel for _, channel in built],
        runbooks=runbooks,
        planner=Planner(catalog, inventory, settings.remediation),
        approvals=approvals,
        notify_within=settings.llm.notify_within,
        offline_reason=None if llm else message("llm_not_configured"),
        grafana=settings.grafana,
        annotations=annotations,
        storm=settings.storm,
        remediation=settings.remediation,
    )
    metrics.watch_channels(channel.name for channel in stages.channels)
    pipeline = Pipeline(engine, stages, metrics, settings.server.base_url)
    services = Services(settings, engine, metrics, templates, clients, pipeline, approvals, llm=llm)
    if settings.chat.enabled:
        services.chat = ChatListener(
            engine,
            settings.chat,
            lambda: settings.remediation.approvers.root,
            model=llm is not None,
            metrics=metrics,
        )
    services.inbound = build_inbound(built, services.deciders)
    executions = Executions(
        engine,
        executor,
        settings.remediation,
        clients.for_section(settings.alertmanager, "alertmanager.proxy"),
        settings.alertmanager.url,
        settings.server.base_url,
        pipeline.report_action,
        metrics,
        annotations,
        verify_of(catalog),
    )
    prometheus = (
        PrometheusSource(settings.prometheus, clients.for_section(settings.prometheus, "prometheus.proxy"))
        if settings.prometheus.url
        else None
    )
    verifier = Verifier(
        engine,
        prometheus,
        settings.remediation,
        verify_of(catalog),
        pipeline.report_action,
        metrics,
        annotations,
    )
    outbox = Outbox(
        engine, {c.name: c for c in stages.channels if not c.immediate}, metrics, settings.server.base_url
    )
    answers = Answers(
        engine,
        {c.name: c for c in stages.channels},
        services.decisions,
        pipeline,
        settings.remediation,
        settings.server.base_url,
        settings.server.language,
        build_asker(settings, llm, toolbox, templates, metrics),
        Reach(
            str(settings.alertmanager.url) if settings.alertmanager.url else None,
            clients.for_section(settings.alertmanager, "alertmanager.proxy"),
        ),
    )
    services.handlers = {
        TRIAGE: pipeline.handle,
        DIAGNOSE: pipeline.handle_diagnose,
        ANNOUNCE: pipeline.handle_announce,
        EXECUTE: executions.handle,
        DELIVER: outbox.handle,
        ANNOTATE: annotations.handle,
        VERIFY: verifier.handle,
        ASK: answers.handle,
        QUESTION: answers.handle,
        REPLY: outbox.handle_reply,
    }
    if workers:
        # The model's diagnoses have workers of their own: a slow model never holds up a triage or a message.
        # Chat questions for the model share them: a question never takes a worker from a triage either.
        diagnoses = Dedicated(DIAGNOSE, frozenset({DIAGNOSE, QUESTION}), settings.llm.concurrency)
        services.pool = WorkerPool(engine, settings.queue, services.handlers, [diagnoses] if llm else [])
        approvals.wake = services.pool.wake
        pipeline.wake = services.pool.wake
        answers.wake = services.pool.wake
        if services.chat is not None:
            services.chat.wake = services.pool.wake
        services.pool.start()
        services.sweeper = asyncio.create_task(_expire_approvals(approvals), name="approval-expiry")
        for receiving in services.inbound:
            receiving.inbound.start()  # DingTalk's Stream, Feishu's long connection: what has one
        # What start-up built lives as long as the process: out of the collector's sight, a full collection
        # (which a 10,000-alert payload's objects trigger) pauses the event loop for tens of milliseconds, not 150.
        gc.freeze()
    return services


async def _expire_approvals(approvals: Approvals, every: float = 30.0) -> None:
    """Mark approvals past their window as expired, so the audit trail says so without anyone asking."""
    while True:
        await asyncio.sleep(every)
        try:
            await approvals.expire()
        except Exception as error:  # the store is down: try again next round
            log.warning("expiring approvals failed: %s", error)
