"""Match runbook: which of the team's runbooks covers the incident — or, plainly, that none does."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from aiops.models import Correlation, RunbookMatch
from aiops.runbooks.library import RunbookLibrary, no_folder
from aiops.runbooks.queries import render_queries


class RunbookMatcher:
    """The runbooks folder, read again when it changes. Reading files and asking git happen off the event loop,
    one match at a time (the library's caches are not shared between threads)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.library = RunbookLibrary(directory)
        self._lock = asyncio.Lock()

    async def match(self, correlation: Correlation) -> RunbookMatch:
        alerts = correlation.new_firing or correlation.alerts
        if not self.directory.is_dir():
            return RunbookMatch(None, None, no_folder(self.directory))
        async with self._lock:
            match, runbook = await asyncio.to_thread(self.library.find, alerts[0])
        if runbook is None:
            return match
        return dataclasses.replace(
            match,
            queries=render_queries(runbook, alerts[0]),
            title=runbook.title,
            actions=runbook.actions,
            body=runbook.body,
        )

    async def read(self, name: str) -> str | None:
        """A runbook's title and text by file name (with or without `.md`) or by an alert name it covers."""
        if not self.directory.is_dir():
            return None
        async with self._lock:
            books = await asyncio.to_thread(self.library.runbooks)
        wanted = name.strip().removesuffix(".md").casefold()
        for runbook in books:
            names = {runbook.path.with_suffix("").as_posix().casefold(), runbook.path.stem.casefold()}
            if wanted in names or wanted in {alert.casefold() for alert in runbook.alerts}:
                return f"{runbook.path.as_posix()}: {runbook.title}\n\n{runbook.body.strip()}"
        return None
