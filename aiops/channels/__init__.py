"""Where incidents are announced. One folder per channel, one small protocol, one registry table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from aiops.models import Incident, Triage

Purpose = Literal["opened", "updated", "resolved", "action"]


@dataclass(frozen=True)
class Announcement:
    """What every channel renders: the same data, whatever the platform."""

    purpose: Purpose
    incident: Incident
    triage: Triage | None
    incident_url: str
    action: Mapping[str, Any] | None = None  # purpose "action": the proposal, its state and its execution
    proposals: Sequence[Mapping[str, Any]] = ()  # as stored: with ids, states and expiry, for approving


class ChannelError(Exception):
    """Delivery failed; `retryable` says whether trying again later could succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Channel(Protocol):
    """Renders an announcement to the platform's message body, and delivers a body."""

    name: str

    def render(self, announcement: Announcement) -> str: ...

    async def deliver(self, body: str) -> Any: ...
