"""What is firing now, as Alertmanager says (API v2): for "@aiops firing", with or without a model."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from aiops.sources.prometheus import without_credentials

MAX_NAMES = 15  # alert names listed; the rest are counted


@dataclass(frozen=True)
class Firing:
    """Active alerts (not silenced, not inhibited) by name and severity, most frequent first."""

    total: int
    counts: tuple[tuple[str, str, int], ...]
    omitted: int = 0


class FiringError(Exception):
    """Alertmanager could not say; the message names it and why."""


async def firing(
    client: httpx.AsyncClient,
    url: str,
    timeout: float = 10.0,  # noqa: ASYNC109 - httpx's own deadline; running out of time is a FiringError
) -> Firing:
    target = url.rstrip("/") + "/api/v2/alerts"
    params = {"active": "true", "silenced": "false", "inhibited": "false"}
    try:
        response = await client.get(target, params=params, timeout=timeout)
    except httpx.HTTPError as error:
        raise FiringError(f"Alertmanager at {without_credentials(url)}: {type(error).__name__}") from None
    if response.status_code != 200:
        raise FiringError(f"Alertmanager at {without_credentials(url)} answered HTTP {response.status_code}")
    try:
        alerts = response.json()
    except ValueError:
        raise FiringError(f"Alertmanager at {without_credentials(url)} answered something not JSON") from None
    return _counted(alerts if isinstance(alerts, list) else [])


def _counted(alerts: list[object]) -> Firing:
    tally: dict[tuple[str, str], int] = {}
    for alert in alerts:
        labels = alert.get("labels") if isinstance(alert, dict) else None
        if not isinstance(labels, dict):
            continue
        key = (str(labels.get("alertname", "?")), str(labels.get("severity", "none")))
        tally[key] = tally.get(key, 0) + 1
    ranked = sorted(
        ((name, sev, n) for (name, sev), n in tally.items()), key=lambda item: (-item[2], item[0])
    )
    return Firing(sum(tally.values()), tuple(ranked[:MAX_NAMES]), max(0, len(ranked) - MAX_NAMES))
