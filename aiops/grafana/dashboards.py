"""Links from an incident to the Grafana dashboard that shows it.

An incident whose alerts share an `instance` label links to the hosts dashboard with that instance selected; any
other incident links to the overview. The time range starts an hour before the incident opened, so the graphs show
what led up to it, and ends at `now` while it is open — the link stays current however late it is followed — or a
quarter of an hour after it resolved, so that the recovery shows too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from aiops.grafana import GrafanaConfig
from aiops.models import Incident

BEFORE = timedelta(hours=1)
AFTER = timedelta(minutes=15)


def dashboard_url(config: GrafanaConfig, incident: Incident) -> str | None:
    """The dashboard link for `incident`; None when neither grafana.url nor grafana.public_url is set."""
    base = config.link_base
    if base is None:
        return None
    end = "now" if incident.resolved_at is None else str(epoch_ms(incident.resolved_at + AFTER))
    query = {"from": str(epoch_ms(incident.opened_at - BEFORE)), "to": end}
    instance = incident.labels.get("instance")
    # Grafana finds a dashboard by its uid; the name after it is the bundled dashboard's, for a readable link.
    if instance:
        path = f"d/{config.dashboards.hosts}/hosts"
        query = {"var-instance": instance, **query}
    else:
        path = f"d/{config.dashboards.overview}/aiops-overview"
    if config.org_id is not None:
        query["orgId"] = str(config.org_id)
    # Every reserved character of a label value is percent-encoded: the link survives markdown and HTML as is.
    return f"{base}/{path}?{urlencode(query, quote_via=quote)}"


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, as Grafana takes times."""
    return round(moment.timestamp() * 1000)
