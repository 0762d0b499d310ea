"""Gather evidence: every source at once, each under its own deadline; a failing source costs only its part."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiops.i18n import message, unexpected
from aiops.models import Correlation, Evidence, Message, RunbookMatch, StageError
from aiops.sources import Source

log = logging.getLogger("aiops.pipeline.evidence")


async def gather(
    sources: Sequence[Source], correlation: Correlation, runbook: RunbookMatch, deadline: float
) -> tuple[tuple[Evidence, ...], tuple[StageError, ...]]:
    results = await asyncio.gather(
        *(asyncio.wait_for(source.gather(correlation, runbook), deadline) for source in sources),
        return_exceptions=True,
    )
    evidence: list[Evidence] = []
    errors: list[StageError] = []
    for source, result in zip(sources, results, strict=True):
        if isinstance(result, BaseException):
            errors.append(StageError(f"evidence:{source.name}", _reason(result, deadline)))
            log.warning("evidence source %s failed: %s", source.name, _reason(result, deadline))
        else:
            evidence.extend(result)
    errors.extend(
        StageError(f"evidence:{item.source}", message("stage_evidence", title=item.title, error=item.error))
        for item in evidence
        if item.error
    )
    return tuple(evidence), tuple(errors)


def _reason(error: BaseException, deadline: float) -> Message:
    if isinstance(error, TimeoutError):
        return message("evidence_deadline", seconds=deadline)
    return unexpected(error)
