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
from aiops.i18n import message, unexpected
from aiops.inventory import HostNotFound, Inventory
from aiops.logtext import compress, redact_lines
from aiops.models import Alert, Correlation, Evidence, Message, RunbookMatch, RunbookQuery, Text
from aiops.ssh import CommandResult, ExecutionError, Executor, command_line, said

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
        if query.error is not None:
            return Evidence(self.name, title, query.query, error=message("query_refused", detail=query.error))
        try:
            command = self._render(query, alert)
        except ActionRefused as error:
            return Evidence(
                self.name, title, query.query, error=message("evidence_refused", reason=error.reason)
            )
        try:
            host, _ = self._inventory.resolve(command.target)
        except HostNotFound as error:
            on = message("evidence_command_on", command=title, host=command.target)
            return Evidence(self.name, on, command_line(command.argv), error=error.reason)
        on = message("evidence_command_on", command=title, host=host)
        return await self._run(on, host, command, query.limit)

    def _render(self, query: RunbookQuery, alert: Alert) -> RenderedCommand:
        """The action's command for this alert; raises `ActionRefused` for anything that may not run as evidence."""
        action = self._catalog.get(query.query)
        if action is None:
            raise ActionRefused(message("refusal_unknown_command", action=repr(query.query)))
        if action.risk != "read":
            raise ActionRefused(message("refusal_command_not_read", action=action.id, risk=action.risk))
        return render_command(action, alert.labels, alert.annotations, proposal_params=None)

    async def _run(self, title: Text, host: str, command: RenderedCommand, limit: int | None) -> Evidence:
        shown = command_line(command.argv)
        try:
            result = await self._executor.run(
                host, command.argv, timeout=command.timeout, output_cap=command.output_cap
            )
        except ExecutionError as error:
            return Evidence(self.name, title, shown, error=said(error))
        lines = self._lines(result, limit, command.output_cap)
        return Evidence(self.name, title, shown, lines=lines, error=_failure(result))

    def _lines(self, result: CommandResult, limit: int | None, cap: int) -> tuple[Text, ...]:
        """The output redacted and folded; with `limit`, only the last `limit` lines of each stream are read."""
        stdout = result.stdout.splitlines()
        stderr = [f"stderr: {line}" for line in result.stderr.splitlines()]
        if limit is not None:
            stdout, stderr = stdout[-limit:], stderr[-limit:]
        if len(stdout) + len(stderr) <= VERBATIM_LINES:
            # Short output is read as it is: folding would mask the very values (dates, sizes) it shows.
            lines, left = [line[:_LINE_CHARS] for line in redact_lines(stdout + stderr) if line.strip()], 0
        else:
            summary = compress(stdout + stderr, max_templates=self._max_lines)
            lines, left = summary.fitted(max_chars=_MAX_CHARS)
        more: list[Text] = [message("log_more_templates", count=left)] if left else []
        cut: list[Text] = [message("command_output_cut", bytes=cap)] if result.truncated else []
        return (*lines, *more, *cut)


def _failure(result: CommandResult) -> Message | None:
    if result.timed_out:
        return message("command_deadline", seconds=round(result.duration))
    if result.exit_signal is not None:
        return message("command_signal", signal=str(result.exit_signal))
    if result.exit_status not in (0, None):
        return message("command_exit_status", status=result.exit_status)
    return None


def _evidence(query: RunbookQuery, result: Evidence | BaseException, path: str) -> Evidence:
    """A command that failed unexpectedly costs only its own evidence."""
    if isinstance(result, Evidence):
        return result
    if not isinstance(result, Exception):
        raise result  # cancellation and the like are not ours to swallow
    log.error("command %s failed", query.query, exc_info=result)
    return Evidence("ssh", f"{path}: {query.query}", query.query, error=unexpected(result))
