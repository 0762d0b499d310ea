"""Evidence sources. Each one answers `gather` for an incident; the evidence stage runs them concurrently."""

from __future__ import annotations

from typing import Protocol

from aiops.models import Correlation, Evidence, RunbookMatch


class Source(Protocol):
    """Something that looks at the world for an incident. Errors are returned as `Evidence.error`, or raised."""

    name: str

    async def gather(self, correlation: Correlation, runbook: RunbookMatch) -> list[Evidence]: ...
