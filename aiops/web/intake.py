"""`POST /webhook/alertmanager`: authenticate, bound, parse, commit, and only then answer.

Status codes follow Alertmanager's retry rule (it retries 5xx only): anything transient is a 5xx, anything that
would fail again the same way is a 4xx naming the problem, and 200 means the delivery is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aiops.models import AlertGroup
from aiops.payload import Invalid, parse
from aiops.service import Services
from aiops.store import deliveries
from aiops.store.deliveries import Receipt
from aiops.web.auth import webhook_allowed
from aiops.web.responses import error

log = logging.getLogger("aiops.intake")
REFUSAL_LOG_INTERVAL = 60.0


@dataclass(frozen=True)
class Parsed:
    """A body that passed validation: its alert group, the text to store, and the group's dedup key."""

    group: AlertGroup
    text: str
    key: str  # deliveries.dedup_key


class Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def webhook(request: Request) -> Response:
    services: Services = request.app.state.services
    response = await _handle(request, services)
    services.metrics.webhook_requests.labels(str(response.status_code)).inc()
    return response


async def _handle(request: Request, services: Services) -> Response:
    config = services.settings.webhook
    if not webhook_allowed(config, request.headers.get("authorization")):
        _warn_refused(request, services)
        challenge = 'Bearer realm="aiops"' if config.token is not None else 'Basic realm="aiops"'
        return error(401, "missing or wrong webhook credentials", {"WWW-Authenticate": challenge})
    try:
        _check_content_type(request.headers.get("content-type"))
        body = await _read_body(request, config.max_body)
        parsed = await _parse(body)
    except Rejected as rejected:
        return error(rejected.status, str(rejected))
    try:
        receipt = await asyncio.wait_for(_commit(services.engine, parsed), config.commit_timeout)
    except Exception as failure:  # the store is locked, full, read-only or down: ask Alertmanager to retry
        group_key = parsed.group.group_key[:80]
        log.error("could not commit a delivery of group %s: %s", group_key, _describe(failure))
        return error(503, "the store could not commit this delivery; retry later")
    _count(services, parsed.group, receipt)
    return JSONResponse(
        {"status": "accepted", "delivery": receipt.delivery_id, "duplicate": not receipt.is_new}
    )


def _warn_refused(request: Request, services: Services) -> None:
    """One warning a minute at most: enough to spot a misconfigured Alertmanager, too few to flood the log."""
    now = time.monotonic()
    if services.refusal_logged_at is None or now - services.refusal_logged_at >= REFUSAL_LOG_INTERVAL:
        services.refusal_logged_at = now
        client = request.client.host if request.client else "unknown"
        log.warning("refused a webhook delivery from %s: missing or wrong credentials", client)


def _check_content_type(value: str | None) -> None:
    media = (value or "").split(";")[0].strip().lower()
    if media != "application/json":
        raise Rejected(415, f"Content-Type must be application/json, not {media or 'missing'}")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Rejected(413, f"body of {declared} bytes is over the limit of {limit} bytes (webhook.max_body)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Rejected(413, f"body is over the limit of {limit} bytes (webhook.max_body)")
    return bytes(body)


async def _parse(body: bytes) -> Parsed:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise Rejected(400, f"body is not valid UTF-8 (byte {bad.start})") from None
    try:
        group = await parse(text)
    except Invalid as invalid:
        raise Rejected(400, str(invalid)) from None
    return Parsed(group, text, deliveries.dedup_key(group))


async def _commit(engine: AsyncEngine, parsed: Parsed) -> Receipt:
    async with engine.begin() as conn:
        return await deliveries.record(conn, parsed.group, parsed.text, parsed.key)


def _count(services: Services, group: AlertGroup, receipt: Receipt) -> None:
    if receipt.is_new:
        services.wake_workers()
        for status, count in Counter(alert.status for alert in group.alerts).items():
            services.metrics.alerts_received.labels(status).inc(count)
    else:
        services.metrics.deliveries_duplicate.inc()


def _describe(failure: Exception) -> str:
    if isinstance(failure, TimeoutError):
        return "no commit within webhook.commit_timeout"
    return f"{type(failure).__name__}: {str(failure).splitlines()[0] if str(failure) else ''}"
