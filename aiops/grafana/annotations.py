"""Grafana annotations: incidents opened and resolved, and actions executed, marked on the dashboards' graphs.

An annotation is an `annotate` job enqueued in the transaction that records its event — an incident's creation or
resolution (pipeline/correlate.py), an execution's end (actions/execute.py), its verification's outcome
(actions/verify.py) — so each event is annotated once, and
a restart loses none. Its text is rendered then, from `grafana/annotation.html.j2`: what was true at the time, and a
link to the incident's page. An opened incident and an executed action are points; a resolved incident is a
region from when it opened to when it resolved.

The job posts it to Grafana's HTTP API as an organisation-wide annotation with tags — `aiops`, the event,
`incident:<id>`, `alertname:…`, `instance:…`, `severity:…`, and for an action `action:…`, `host:…`, `outcome:…` —
that dashboards filter on. A timeout, a refused connection, a 429 or a 5xx is retried by the queue with backoff;
Grafana may have stored an annotation whose answer was lost, so a retry first asks whether it is there, and none is
written twice. Any other refusal is final: the error says what to fix. All annotate jobs share one serial key:
during a Grafana outage one waits at a time, and triage, which never calls Grafana, is not held back at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Literal

import httpx
from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncConnection

from aiops.grafana import GrafanaConfig
from aiops.grafana.dashboards import epoch_ms
from aiops.metrics import Metrics
from aiops.models import Incident
from aiops.sources.prometheus import without_credentials
from aiops.store import incidents, jobs
from aiops.store.jobs import Job

log = logging.getLogger("aiops.grafana")

ANNOTATE = "annotate"
SERIAL_KEY = "grafana"
PATH = "/api/annotations"
Event = Literal["opened", "resolved", "executed", "verified"]
TAG_CHARS = 100  # a tag is cut to this many characters
_MESSAGE_CHARS = 300  # of Grafana's error message, in ours
_REFUSALS = {
    400: "Grafana found the annotation malformed (400: {message})",
    401: "grafana.token was refused (401: {message}): it is wrong, expired or revoked; create a new service "
    "account token",
    403: "the service account of grafana.token lacks a permission (403: {message}): give it the Editor role, or "
    "annotations:create and annotations:read",
    404: "grafana.url has no annotations API at {path} (404): set it to the URL Grafana's own pages start with",
}


class GrafanaUnavailable(Exception):
    """Grafana did not take the request now (timeout, unreachable, 429, 5xx); the queue retries the job."""


class GrafanaRefused(Exception):
    """Grafana refused the request in a way that trying again cannot change; the message says what to fix."""


class Annotations:
    """`record` enqueues an event's annotation; `handle`, the `annotate` job, writes it to Grafana."""

    def __init__(
        self,
        config: GrafanaConfig,
        templates: Environment,
        base_url: str,
        http: httpx.AsyncClient,
        metrics: Metrics,
    ) -> None:
        self._config = config
        self._templates = templates
        self._base_url = base_url
        self._http = http
        self._metrics = metrics

    async def record(
        self,
        conn: AsyncConnection,
        incident_id: int,
        event: Event,
        action: Mapping[str, Any] | None = None,
    ) -> None:
        """Enqueue the annotation of `event` in the caller's transaction; nothing when annotations are off.
        For "executed", `action` is the proposal with the execution's outcome as its `state`; for "verified", with
        the verification's outcome as its `state` and what it said as `said`."""
        if not self._config.annotating:
            return
        incident = await incidents.get(conn, incident_id)
        if incident is None:
            return
        try:
            annotation = self.annotation(incident, event, action)
        except Exception as error:  # a broken template override must not fail the event's own transaction
            log.error("the %s annotation of incident %d was not written: %s", event, incident_id, error)
            return
        payload = {"incident_id": incident_id, "annotation": annotation}
        await jobs.enqueue(conn, ANNOTATE, SERIAL_KEY, payload)

    def annotation(
        self, incident: Incident, event: Event, action: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The body of `POST /api/annotations` for `event`."""
        opened, now = epoch_ms(incident.opened_at), round(time.time() * 1000)
        body: dict[str, Any] = {"time": now if event in ("executed", "verified") else opened}
        if event == "resolved":
            body["timeEnd"] = epoch_ms(incident.resolved_at) if incident.resolved_at else now
        body["tags"] = tags(incident, event, action)
        template = self._templates.get_template("grafana/annotation.html.j2")
        url = f"{self._base_url}/incidents/{incident.id}"
        text = template.render(event=event, incident=incident, action=action, url=url)
        body["text"] = " ".join(text.split())
        return body

    async def handle(self, job: Job) -> None:
        """The `annotate` job: write the annotation unless an earlier attempt did. Raises `GrafanaUnavailable` for
        the queue to retry; a refusal is logged and not retried."""
        annotation: dict[str, Any] = job.payload["annotation"]
        incident_id = job.payload["incident_id"]
        if not self._config.annotating:
            log.info("annotation of incident %s dropped: grafana annotations are off", incident_id)
            self._metrics.annotations.labels("dropped").inc()
            return
        try:
            # A retry may follow an attempt whose answer was lost after Grafana stored the annotation.
            if job.attempts > 1 and await self._written(annotation):
                outcome = "already_written"
            else:
                await self._request("POST", json=annotation)
                outcome = "written"
        except GrafanaRefused as refusal:
            log.error("the annotation of incident %s was not written: %s", incident_id, refusal)
            outcome = "refused"
        except GrafanaUnavailable:
            self._metrics.annotations.labels("retry").inc()
            raise
        self._metrics.annotations.labels(outcome).inc()

    async def _written(self, annotation: Mapping[str, Any]) -> bool:
        """Whether Grafana holds this annotation already: every one of its tags, at its time."""
        at = annotation["time"]
        query = [("from", at), ("to", at), ("type", "annotation"), ("limit", 10)]
        query += [("tags", tag) for tag in annotation["tags"]]
        answer = await self._request("GET", params=query)
        try:
            found = answer.json()
        except ValueError:
            raise GrafanaRefused(f"{PATH} did not answer JSON: is grafana.url Grafana's own URL?") from None
        return isinstance(found, list) and any(item.get("time") == at for item in found)

    async def _request(self, method: str, **options: Any) -> httpx.Response:
        """Grafana's answer when it is a success; raises `GrafanaUnavailable` or `GrafanaRefused` otherwise."""
        assert self._config.url is not None and self._config.token is not None  # `annotating` says so
        where = f"grafana at {without_credentials(self._config.url)}"
        headers = {"Authorization": f"Bearer {self._config.token.get_secret_value()}"}
        timeout = self._config.timeout
        try:
            answer = await self._http.request(
                method, self._config.url + PATH, headers=headers, timeout=timeout, **options
            )
        except httpx.TimeoutException:
            raise GrafanaUnavailable(f"{where} did not answer within {timeout:g}s") from None
        except httpx.TransportError as error:
            raise GrafanaUnavailable(
                f"{where} is unreachable: {str(error) or type(error).__name__}"
            ) from None
        status = answer.status_code
        if status >= 500 or status == 429:
            raise GrafanaUnavailable(f"{where} answered {status}: {_message(answer)}")
        if not answer.is_success:
            template = _REFUSALS.get(status, "{where} refused {method} {path} ({status}: {message})")
            fields = {"where": where, "method": method, "path": PATH, "status": status}
            raise GrafanaRefused(template.format(message=_message(answer), **fields))
        return answer


def tags(incident: Incident, event: Event, action: Mapping[str, Any] | None = None) -> list[str]:
    """What dashboards filter annotations by; label values as they are, each tag cut to `TAG_CHARS`."""
    found = ["aiops", event, f"incident:{incident.id}"]
    found += [
        f"{name}:{incident.labels[name]}" for name in ("alertname", "instance") if incident.labels.get(name)
    ]
    found.append(f"severity:{incident.severity}")
    if action is not None:
        found.append(f"action:{action['action_id']}")
        found += [f"host:{action['host']}"] if action.get("host") else []
        found.append(f"outcome:{action['state']}")
    return [tag[:TAG_CHARS] for tag in found]


def _message(answer: httpx.Response) -> str:
    """Grafana's own words about a failed request: its JSON `message`, or the start of the body."""
    try:
        found = answer.json()
    except ValueError:
        found = None
    message = found.get("message") if isinstance(found, dict) else None
    text = str(message) if message else answer.text.strip() or answer.reason_phrase
    return " ".join(text.split())[:_MESSAGE_CHARS]
