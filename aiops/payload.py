"""Alertmanager's webhook payload (version 4), validated at the edge.

Field names follow Alertmanager's JSON exactly. Unknown top-level fields are accepted, because Alertmanager adds
fields between releases (`notification_reason` in 0.32, `routeLabels` in 0.34) and a receiver that rejected them
would drop alerts with a permanent 4xx.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache, partial
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from aiops.models import Alert, AlertGroup

T = TypeVar("T")
MAX_LABEL_VALUE = 4096
MAX_ANNOTATION_VALUE = 65536
MAX_TRUNCATED = 2**31 - 1  # the store's INTEGER column (4 bytes on PostgreSQL)
# Go's zero time: what Alertmanager sends as `endsAt` of an alert that is still firing.
_GO_ZERO = datetime(1, 1, 1, tzinfo=UTC)


def _without_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\u0000), which the store cannot hold")
    return value


# A string of the payload: it reaches the store's columns, and PostgreSQL's text cannot hold a NUL.
Text = Annotated[str, AfterValidator(_without_nul)]
Labels = dict[Annotated[Text, Field(min_length=1, max_length=1024)], Text]


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
    generatorURL: Text = ""
    fingerprint: Annotated[Text, Field(min_length=1, max_length=64)]

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

    @field_validator("startsAt")
    @classmethod
    def _starts_at(cls, value: datetime) -> datetime:
        return _utc(value)

    @field_validator("endsAt")
    @classmethod
    def _ends_at(cls, value: datetime | None) -> datetime | None:
        ends_at = None if value is None else _utc(value)
        return None if ends_at == _GO_ZERO else ends_at

    def to_alert(self) -> Alert:
        return Alert(
            fingerprint=self.fingerprint,
            status=self.status,
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            starts_at=self.startsAt,
            ends_at=self.endsAt,
            generator_url=self.generatorURL,
        )


class WebhookPayload(BaseModel):
    """The body Alertmanager 0.25+ posts to a `webhook_configs` receiver."""

    model_config = ConfigDict(extra="allow", frozen=True)

    version: str
    groupKey: Annotated[Text, Field(min_length=1, max_length=8192)]
    truncatedAlerts: int = Field(default=0, ge=0, le=MAX_TRUNCATED)
    status: Literal["firing", "resolved"]
    receiver: Text
    groupLabels: Labels = Field(default_factory=dict)
    commonLabels: Labels = Field(default_factory=dict)
    commonAnnotations: Labels = Field(default_factory=dict)
    externalURL: Text = ""
    notification_reason: Text | None = None
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


# Alerts validated at a time in a big payload: about 2.5 ms each, so that a request waiting between slices
# (a dozen steps on the event loop) is delayed by tens of milliseconds, not hundreds.
SLICE = 100


class Invalid(Exception):
    """A payload that is not Alertmanager's; the message names the field, as a 400 answer says it."""


async def parse(text: str) -> AlertGroup:
    """The payload as an `AlertGroup`; raises `Invalid`.

    pydantic holds the GIL while it validates, so a 10,000-alert body validated in one call — in a thread or not —
    stalls every other request for a few hundred milliseconds. A big one is validated `SLICE` alerts at a time,
    yielding to the event loop between slices."""
    raw = _object(text)
    alerts = raw.get("alerts") if raw is not None else None
    if raw is None or not isinstance(alerts, list) or len(alerts) <= SLICE:
        return _validated(lambda: WebhookPayload.model_validate_json(text).to_group())
    group = _validated(lambda: WebhookPayload.model_validate({**raw, "alerts": alerts[:SLICE]}).to_group())
    found = list(group.alerts)
    for start in range(SLICE, len(alerts), SLICE):
        await asyncio.sleep(0)
        found.extend(_validated(partial(_slice, alerts[start : start + SLICE]), start))
    return dataclasses.replace(group, alerts=tuple(found))


def _object(text: str) -> dict[str, Any] | None:
    try:
        raw = json.loads(text)
    except ValueError:
        return None  # pydantic's own parse says what is wrong, and where
    return raw if isinstance(raw, dict) else None


def _validated(validate: Callable[[], T], offset: int | None = None) -> T:
    try:
        return validate()
    except ValidationError as invalid:
        raise Invalid(describe_error(invalid, offset)) from None


def _slice(alerts: list[Any]) -> list[Alert]:
    return [alert.to_alert() for alert in _alerts().validate_python(alerts)]


@cache
def _alerts() -> TypeAdapter[list[AlertPayload]]:
    return TypeAdapter(list[AlertPayload])


def _utc(moment: datetime) -> datetime:
    """`moment` in UTC (one without an offset is taken to be in UTC already); every time is kept that way, so
    one that UTC cannot hold (`9999-12-31T23:00:00-14:00` is in the year 10000) is refused here."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"{moment.isoformat()} is outside the years 1 to 9999 once converted to UTC"
        ) from None


def describe_error(error: ValidationError, offset: int | None = None) -> str:
    """Render pydantic's errors as `alerts[0].labels: has no 'alertname' label; …` for a 400 answer. With
    `offset`, the errors are those of a slice of the alerts starting there."""
    parts = []
    for item in error.errors(include_url=False)[:5]:
        loc = item["loc"]
        if offset is not None and loc and isinstance(loc[0], int):
            loc = ("alerts", loc[0] + offset, *loc[1:])
        parts.append(f"{field_path(loc)}: {_reason(item)}")
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
