"""Storms: incidents that open close together with the same cause signature are diagnosed once, as a cluster.

The signature is the incident's alert names and the values of `storm.labels` (cluster, namespace, job) among its
common labels — what many instances failing the same way share; the instance is deliberately not in it. When an
incident opens and at least `storm.min_members - 1` other open incidents with its signature opened within
`storm.window` and are in no cluster, they form a cluster; later incidents with the signature join it until no
member has joined for `storm.window`. A member whose signature changes (a later delivery adds other alerts) leaves
its cluster and is diagnosed on its own. A lone incident never meets any of this.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from aiops.i18n import message
from aiops.models import Correlation, Evidence
from aiops.store import clusters
from aiops.store.clusters import Cluster, Member
from aiops.units import Seconds

REPRESENTATIVES = 5  # members whose labels the prompt shows


class StormConfig(BaseModel):
    """The `storm` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    window: Seconds = 300.0
    min_members: int = Field(default=3, ge=2)
    labels: tuple[str, ...] = ("cluster", "namespace", "job")


@dataclass(frozen=True)
class Placement:
    """Where an incident stands: in no cluster, or in `cluster` — `formed` when this incident made it a storm."""

    cluster: Cluster | None = None
    formed: bool = False
    left: int | None = None  # the cluster it just left, when its signature changed


def signature(correlation: Correlation, labels: Sequence[str]) -> tuple[str, str]:
    """(hash, readable form) of the incident's cause signature."""
    names = sorted({alert.name for alert in correlation.alerts if alert.status == "firing"} or {"-"})
    common = correlation.incident.labels
    parts = [",".join(names), *(f"{name}={common[name]}" for name in labels if common.get(name))]
    readable = " ".join(parts)
    return hashlib.sha256(readable.encode()).hexdigest()[:32], readable


async def place(conn: AsyncConnection, correlation: Correlation, config: StormConfig) -> Placement:
    """Put a triaged incident in its storm cluster, when there is one; in the triage's own transaction."""
    if not config.enabled:
        return Placement()
    incident = correlation.incident
    digest, readable = signature(correlation, config.labels)
    before = await clusters.set_signature(conn, incident.id, digest)
    left = await clusters.leave(conn, incident.id) if before not in (None, digest) else None
    # Without a signature until now, no cluster can have taken the incident in (they take signed loners only).
    current = None if before is None else await clusters.of_incident(conn, incident.id)
    if current is not None:
        return Placement(current)
    if correlation.change != "opened":
        return Placement(left=left)
    now = time.time()
    found = await clusters.open_for(conn, digest, now)
    if found is not None:
        return Placement(await clusters.join(conn, found.id, incident.id, now + config.window))
    others = await clusters.loners(conn, digest, now - config.window, incident.id)
    if len(others) + 1 < config.min_members:
        return Placement(left=left)
    members = [*others, incident.id]
    cluster_id = await clusters.create(conn, digest, readable, members, now + config.window)
    created = await clusters.get(conn, cluster_id)
    return Placement(created, formed=True)


def evidence(cluster: Cluster, members: Sequence[Member]) -> Evidence:
    """What the model is told about the storm: how many, of what, and a few members' labels, as data."""
    tally: dict[tuple[str, str], int] = {}
    for member in members:
        key = (member.labels.get("alertname", member.title), member.severity)
        tally[key] = tally.get(key, 0) + 1
    counts = [
        f"{n} × {name} [{severity}]" for (name, severity), n in sorted(tally.items(), key=lambda i: -i[1])
    ]
    samples = [
        f"#{m.incident_id}: " + ", ".join(f"{k}={v}" for k, v in sorted(m.labels.items()))
        for m in members[:REPRESENTATIVES]
    ]
    return Evidence(
        source="storm",
        title=message("evidence_storm", count=len(members), signature=cluster.description),
        query=cluster.description,
        lines=tuple([*counts, *samples]),
    )
