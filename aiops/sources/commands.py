"""Read-only commands as evidence: the runbook's `command:` items, run on the alert's host over SSH.

Only catalog actions with `risk: read` run here, with parameters from the alert's labels and annotations (an
action that needs a proposal is refused: evidence is gathered before anything is proposed). Their output is
redacted and folded into templates with counts (`aiops.logtext.compress`) before anyone reads it.
"""

from __future__ import annotations

import asyncio
import logging

from aiops.actions.catalog import ActionRefused, Catalog, RenderedCommand, render_command
from aiops.actions.live import LiveCatalog
from aiops.inventory import HostNotFound, Inventory
from aiops.logtext import compress, redact_lines
from aiops.models import Alert, Correlation, Evidence, RunbookMatch, RunbookQuery
from aiops.ssh import CommandResult, ExecutionError, Executor, command_line

log = logging.getLogger("aiops.sources.commands")

# What one command's evidence may add to the model's prompt.
VERBATIM_LINES = 60  # output up to this many lines is shown line by line, not folded
_LINE_CHARS = 400
_MAX_CHARS = 8000


class CommandSource:
    """Runs the matched runbook's read-only commands, each on the host its alert names, all at once."""

    name = "ssh"

    def __init__(
        self, catalog: Catalog | LiveCatalog, inventory: Inventory, executor: Executor, max_lines: int = 200
    ) -> None:
        self._catalog = catalog
        self._inventory = inventory
        self._executor = executor
        self._max_lines = max_lines  # most evidence lines (folded templates) per command

    async def gather(self, correlation: Correlation, runbook: RunbookMatch) -> list[Evidence]:
        alert = (correlation.new_firing or correlation.alerts)[0]
        queries = [query for query in runbook.queries if query.language == "command"]
        results = await asyncio.gather(
            *(self.run_query(query, alert, runbook.path or "") for query in queries), return_exceptions=True
        )
        return [
            _evidence(query, result, runbook.path or "")
            for query, result in zip(queries, results, strict=True)
        ]

    async def run_query(self, query: RunbookQuery, alert: Alert, path: str) -> Evidence:
        """One read-only catalog command on the host `alert` names (a runbook's, or the investigation's)."""
        title = f"{path}: {query.query}"
        try:
            command = self._render(query, alert)
        except ActionRefused as error:
            return Evidence(self.name, title, query.query, error=f"refused: {error.reason}")
        try:
            host, _ = self._inventory.resolve(command.target)
        except HostNotFound as error:
            return Evidence(
                self.name, f"{title} on {command.target}", command_line(command.argv), error=str(error)
            )
        return await self._run(f"{title} on {host}", host, command, query.limit)

    def _render(self, query: RunbookQuery, alert: Alert) -> RenderedCommand:
        """The action's command for this alert; raises `ActionRefused` for anything that may not run as evidence."""
        if query.error is not None:
            raise ActionRefused(query.error)
        action = self._catalog.get(query.query)
        if action is None:
            raise ActionRefused(f"{query.query!r} is not an action in actions.yml")
        if action.risk != "read":
            raise ActionRefused(
                f"{action.id} has risk {action.risk}; only risk: read actions run as evidence"
            )
        return render_command(action, alert.labels, alert.annotations, proposal_params=None)

    async def _run(self, title: str, host: str, command: RenderedCommand, limit: int | None) -> Evidence:
        shown = command_line(command.argv)
        try:
            result = await self._executor.run(
                host, command.argv, timeout=command.timeout, output_cap=command.output_cap
            )
        except ExecutionError as error:
            return Evidence(self.name, title, shown, error=str(error))
        lines = self._lines(result, limit, command.output_cap)
        return Evidence(self.name, title, shown, lines=lines, error=_failure(result))

    def _lines(self, result: CommandResult, limit: int | None, cap: int) -> tuple[str, ...]:
        """The output redacted and folded; with `limit`, only the last `limit` lines of each stream are read."""
        stdout = result.stdout.splitlines()
        stderr = [f"stderr: {line}" for line in result.stderr.splitlines()]
        if limit is not None:
            stdout, stderr = stdout[-limit:], stderr[-limit:]
        if len(stdout) + len(stderr) <= VERBATIM_LINES:
            # Short output is read as it is: folding would mask the very values (dates, sizes) it shows.
            lines = [line[:_LINE_CHARS] for line in redact_lines(stdout + stderr) if line.strip()]
        else:
            summary = compress(stdout + stderr, max_templates=self._max_lines)
            lines = summary.render(max_chars=_MAX_CHARS).splitlines()
        if result.truncated:
            lines.append(f"(output cut at {cap} bytes per stream; the command was stopped there)")
        return tuple(lines)


def _failure(result: CommandResult) -> str | None:
    if result.timed_out:
        return f"stopped at its deadline after {result.duration:.0f}s; the output until then is shown"
    if result.exit_signal is not None:
        return f"killed by signal {result.exit_signal}"
    if result.exit_status not in (0, None):
        return f"exit status {result.exit_status}"
    return None


def _evidence(query: RunbookQuery, result: Evidence | BaseException, path: str) -> Evidence:
    """A command that failed unexpectedly costs only its own evidence."""
    if isinstance(result, Evidence):
        return result
    if not isinstance(result, Exception):
        raise result  # cancellation and the like are not ours to swallow
    log.error("command %s failed", query.query, exc_info=result)
    return Evidence(
        "ssh", f"{path}: {query.query}", query.query, error=f"failed: {type(result).__name__}: {result}"
    )
