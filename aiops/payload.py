"""Alertmanager's webhook payload (version 4), validated at the edge.

Field names follow Alertmanager's JSON exactly. Unknown top-level fields are accepted, because Alertmanager adds
fields between releases (`notification_reason` in 0.32, `routeLabels` in 0.34) and a receiver that rejected them
would drop alerts with a permanent 4xx.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aiops.models import Alert, AlertGroup

MAX_LABEL_VALUE = 4096
MAX_ANNOTATION_VALUE = 65536
# Go's zero time: what Alertmanager sends as `endsAt` of an alert that is still firing.
_GO_ZERO_YEAR = 1

Labels = dict[Annotated[str, Field(min_length=1, max_length=1024)], str]


def _check_values(values: dict[str, str], limit: int) -> dict[str, str]:
    for key, value in values.items():
        if len(value) > limit:
            raise ValueError(f"value of {key!r} is {len(value)} characters long; the limit is {limit}")
    return values


class AlertPayload(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    status: Literal["firing", "resolved"]
    labels: Labels
    annotations: Labels = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: Annotated[str, Field(min_length=1, max_length=64)]

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        if "alertname" not in value:
            raise ValueError("has no 'alertname' label")
        return _check_values(value, MAX_LABEL_VALUE)

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_values(value, MAX_ANNOTATION_VALUE)

    def to_alert(self) -> Alert:
        ends_at = _utc(self.endsAt) if self.endsAt and self.endsAt.year > _GO_ZERO_YEAR else None
        return Alert(
            fingerprint=self.fingerprint,
            status=self.status,
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            starts_at=_utc(self.startsAt),
            ends_at=ends_at,
            generator_url=self.generatorURL,
        )


class WebhookPayload(BaseModel):
    """The body Alertmanager 0.25+ posts to a `webhook_configs` receiver."""

    model_config = ConfigDict(extra="allow", frozen=True)

    version: str
    groupKey: Annotated[str, Field(min_length=1, max_length=8192)]
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: Labels = Field(default_factory=dict)
    commonLabels: Labels = Field(default_factory=dict)
    commonAnnotations: Labels = Field(default_factory=dict)
    externalURL: str = ""
    notification_reason: str | None = None
    routeLabels: Labels | None = None
    alerts: list[AlertPayload] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value != "4":
            raise ValueError(f"unsupported version {value!r}; aiops understands version '4'")
        return value

    def to_group(self) -> AlertGroup:
        return AlertGroup(
            group_key=self.groupKey,
            status=self.status,
            receiver=self.receiver,
            group_labels=dict(self.groupLabels),
            common_labels=dict(self.commonLabels),
            common_annotations=dict(self.commonAnnotations),
            external_url=self.externalURL,
            alerts=tuple(alert.to_alert() for alert in self.alerts),
            truncated_alerts=self.truncatedAlerts,
        )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def describe_error(error: ValidationError) -> str:
    """Render pydantic's errors as `alerts[0].labels: has no 'alertname' label; …` for a 400 answer."""
    parts = []
    for item in error.errors(include_url=False)[:5]:
        parts.append(f"{field_path(item['loc'])}: {_reason(item)}")
    more = error.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(body)"


def _reason(item: object) -> str:
    details = item if isinstance(item, dict) else {}
    message = str(details.get("msg", "is invalid"))
    if details.get("type") == "missing":
        return "is required"
    if details.get("type") == "extra_forbidden":
        return "is not a known field"
    return message.removeprefix("Value error, ")


def problem(item: Any, root: str = "(body)") -> str:
    """One pydantic error as `field.path: reason`, the way every file and payload problem is reported."""
    loc = tuple(item["loc"])
    return f"{field_path(loc) if loc else root}: {_reason(item)}"
