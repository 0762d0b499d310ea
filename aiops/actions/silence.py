"""The built-in `silence` action: a silence in Alertmanager (API v2) matching one incident's alert labels.

Both calls raise `SilenceError`, which says whether trying again later could help; retrying is the caller's
job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from aiops.sources.prometheus import without_credentials

_DETAIL_LIMIT = 300  # characters of Alertmanager's error text kept in a message


class SilenceError(Exception):
    """Alertmanager did not do what was asked; `retryable` says whether trying again later could help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


async def create_silence(
    client: httpx.AsyncClient,
    alertmanager_url: str,
    labels: Mapping[str, str],
    *,
    seconds: int,
    created_by: str,
    comment: str,
    # httpx's own deadline rather than the caller's asyncio.timeout: running out of time is a retryable
    # SilenceError naming Alertmanager, not a cancellation.
    timeout: float = 10.0,  # noqa: ASYNC109
) -> str:
    """POST /api/v2/silences; returns the silence id.

    The silence matches every label of the alert literally (see `equality_matchers`), from now until
    `seconds` from now. `comment` is where the caller links the incident. A timeout is reported as retryable
    even though Alertmanager may have created the silence: the API cannot make a create idempotent, and a
    duplicate silence ending at the same time is harmless.
    """
    matchers = equality_matchers(labels)
    if not matchers:
        raise SilenceError(
            "the incident has no labels to silence by; a silence without matchers would silence every alert",
            retryable=False,
        )
    starts = datetime.now(UTC)
    body = {
        "matchers": matchers,
        "startsAt": _rfc3339(starts),
        "endsAt": _rfc3339(starts + timedelta(seconds=seconds)),
        "createdBy": created_by,
        "comment": comment,
    }
    response = await _send(client, "POST", alertmanager_url, "/api/v2/silences", timeout, body)
    return _silence_id(response, alertmanager_url)


async def expire_silence(
    client: httpx.AsyncClient,
    alertmanager_url: str,
    silence_id: str,
    timeout: float = 10.0,  # noqa: ASYNC109 - see create_silence
) -> None:
    """DELETE /api/v2/silence/{id}: the silence ends now. Expiring an expired silence succeeds."""
    path = "/api/v2/silence/" + quote(silence_id, safe="")
    await _send(client, "DELETE", alertmanager_url, path, timeout)


def equality_matchers(labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """One literal equality matcher per label, so the silence mutes exactly this alert series.

    An alert's labels are its identity: matching all of them silences that series and no other — the same
    alert on another instance or mount point keeps notifying. None is left out for changing between
    evaluations (Prometheus's alert labels don't; only annotations may) or for being uninformative, since
    dropping one would widen the silence to other series. Labels with an empty value are skipped:
    Alertmanager treats an empty label as an absent one, so such a matcher would add nothing. Values are
    never regular expressions, whatever characters they hold.
    """
    return [
        {"name": name, "value": value, "isRegex": False, "isEqual": True}
        for name, value in sorted(labels.items())
        if value
    ]


async def _send(
    client: httpx.AsyncClient,
    method: str,
    alertmanager_url: str,
    path: str,
    timeout: float,  # noqa: ASYNC109 - see create_silence
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    url = alertmanager_url.rstrip("/") + path
    try:
        response = await client.request(method, url, json=body, timeout=timeout)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
        raise SilenceError(f"alertmanager.url is not a usable URL: {error}", retryable=False) from None
    except httpx.TimeoutException:
        message = f"{_where(alertmanager_url)} did not answer within {timeout:g}s"
        raise SilenceError(message, retryable=True) from None
    except httpx.TransportError as error:
        message = f"{_where(alertmanager_url)} is unreachable: {str(error) or type(error).__name__}"
        raise SilenceError(message, retryable=True) from None
    if not response.is_success:
        raise _refused(response, method, path, alertmanager_url)
    return response


def _refused(response: httpx.Response, method: str, path: str, alertmanager_url: str) -> SilenceError:
    status = response.status_code
    detail = _detail(response)
    message = f"{_where(alertmanager_url)} refused {method} {path} with HTTP {status}: {detail}"
    if status in (401, 403):
        message += " (check the user name and password in alertmanager.url)"
    # Alertmanager 0.25 answers 500 for an unknown silence id; asking again will not make it known.
    unknown = status == 500 and "silence not found" in detail
    retryable = (status >= 500 and not unknown) or status in (408, 429)
    return SilenceError(message, retryable=retryable)


def _detail(response: httpx.Response) -> str:
    """Alertmanager's error text: a JSON string from its handlers, `{"code", "message"}` from its request
    validation."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        body = body["message"]
    text = re.sub(r"\s+", " ", body if isinstance(body, str) else str(body)).strip() or "no error text"
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"


def _silence_id(response: httpx.Response, alertmanager_url: str) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    silence_id = body.get("silenceID") if isinstance(body, dict) else None
    if not isinstance(silence_id, str) or not silence_id:
        raise SilenceError(
            f"{_where(alertmanager_url)} answered HTTP {response.status_code} without a silenceID; "
            "is alertmanager.url the address of Alertmanager itself?",
            retryable=False,
        )
    return silence_id


def _where(alertmanager_url: str) -> str:
    return f"Alertmanager at {without_credentials(alertmanager_url)} (alertmanager.url)"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
