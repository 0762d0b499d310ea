"""Read-only commands as evidence, run for real over SSH: folded, redacted, refused when not `risk: read`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aiops.actions.catalog import Catalog, parse_catalog
from aiops.inventory import Inventory
from aiops.models import Alert, Correlation, Evidence, Incident, RunbookMatch, RunbookQuery
from aiops.sources.commands import CommandSource
from aiops.ssh import SshExecutor
from tests.support.sshd import SshServer, running_sshd

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
CATALOG = """\
worker-log:
  description: The worker's recent lines
  argv: [sh, -c, 'i=0; while [ $i -lt 500 ]; do i=$((i+1)); echo "worker $i finished job in $((i % 7)) ms"; done']
  target: labels.instance
  risk: read
  timeout: 10s
config-dump:
  description: The service's configuration
  argv: [printf, '%s\\n', "db_host=10.0.0.5", "password=hunter2", "Authorization: Bearer abcdefghijklmnop1234"]
  target: labels.instance
  risk: read
  timeout: 10s
unit-status:
  description: A unit's state
  argv: [printf, 'unit %s is failed\\n', "{unit}"]
  params: {unit: {from: labels.service, pattern: '[a-z0-9@._-]{1,64}'}}
  target: labels.instance
  risk: read
  timeout: 10s
failing:
  description: A check that fails
  argv: [sh, -c, 'echo "disk check: sda1 has errors"; echo "fsck needed" >&2; exit 2']
  target: labels.instance
  risk: read
  timeout: 10s
slow:
  description: A command slower than its deadline
  argv: [sh, -c, 'echo partial; sleep 20']
  target: labels.instance
  risk: read
  timeout: 1s
grep-for:
  description: Lines the model asks about
  argv: [grep, -r, "{needle}", /var/log]
  params: {needle: {from: proposal, pattern: '.{1,50}'}}
  target: labels.instance
  risk: read
  timeout: 10s
"""


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def source(sshd: SshServer, catalog: Catalog | None = None) -> CommandSource:
    inventory = Inventory({"web-1": sshd.host()})
    return CommandSource(catalog or parse_catalog(CATALOG), inventory, SshExecutor(inventory))


def correlation(**labels: str) -> Correlation:
    alert = Alert(
        fingerprint="f1",
        status="firing",
        labels={"alertname": "WorkerSlow", "instance": "web-1:9100", "service": "worker", **labels},
        annotations={},
        starts_at=NOW,
        ends_at=None,
        generator_url="",
    )
    incident = Incident(1, "g", "open", "WorkerSlow", "warning", alert.labels, NOW, NOW)
    return Correlation(incident, "opened", (alert,), (alert,))


def runbook(*action_ids: str, limit: int | None = None) -> RunbookMatch:
    queries = tuple(
        RunbookQuery(f"logs[{index}]", "command", action_id, 3600.0, limit=limit)
        for index, action_id in enumerate(action_ids)
    )
    promql = RunbookQuery("up", "promql", "up", 3600.0)
    return RunbookMatch("worker.md", None, "alert name", queries=(promql, *queries))


async def gather_one(sshd: SshServer, action_id: str, **labels: str) -> Evidence:
    [evidence] = await source(sshd).gather(correlation(**labels), runbook(action_id))
    return evidence


async def test_output_comes_back_folded(sshd: SshServer) -> None:
    evidence = await gather_one(sshd, "worker-log")
    assert evidence.source == "ssh" and evidence.error is None
    assert str(evidence.title) == "worker.md: worker-log on web-1"
    assert evidence.query.startswith("sh -c 'i=0; while")
    assert len(evidence.lines) == 1, evidence.lines
    assert evidence.lines[0].startswith("×500  worker <NUM> finished job in <NUM> ms")


async def test_a_limit_reads_only_the_last_lines(sshd: SshServer) -> None:
    [evidence] = await source(sshd).gather(correlation(), runbook("worker-log", limit=50))
    assert len(evidence.lines) == 50 and evidence.lines[0].startswith("worker 451 finished")


async def test_secrets_in_the_output_are_redacted(sshd: SshServer) -> None:
    evidence = await gather_one(sshd, "config-dump")
    text = "\n".join(map(str, evidence.lines))
    assert "hunter2" not in text and "abcdefghijklmnop1234" not in text
    assert "password=«redacted»" in text and "10.0.0.5" in text


async def test_parameters_come_from_labels(sshd: SshServer) -> None:
    evidence = await gather_one(sshd, "unit-status", service="nginx@web.service")
    assert evidence.query == "printf 'unit %s is failed\\n' nginx@web.service"
    assert evidence.lines == ("unit nginx@web.service is failed",)


async def test_an_unsafe_label_is_refused_and_nothing_runs(sshd: SshServer, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evidence = await gather_one(sshd, "unit-status", service=f"x; touch {marker}")
    assert evidence.error is not None and str(evidence.error).startswith(
        "refused: unit-status: parameter 'unit' from labels.service is 'x; touch "
    )
    assert evidence.lines == () and not marker.exists()


async def test_a_failing_command_keeps_its_output(sshd: SshServer) -> None:
    evidence = await gather_one(sshd, "failing")
    assert str(evidence.error) == "exit status 2"
    assert evidence.lines == ("disk check: sda1 has errors", "stderr: fsck needed")


async def test_a_slow_command_is_stopped_with_what_it_said(sshd: SshServer) -> None:
    evidence = await gather_one(sshd, "slow")
    assert evidence.error is not None and str(evidence.error).startswith("stopped at its deadline")
    assert evidence.lines == ("partial",)


async def test_only_read_actions_run(sshd: SshServer, tmp_path: Path) -> None:
    marker = tmp_path / "restarted"
    catalog = parse_catalog(
        CATALOG
        + f"""\
restart-worker:
  description: Restart the worker
  argv: [touch, {marker}]
  target: labels.instance
  risk: high
  timeout: 10s
"""
    )
    [evidence] = await source(sshd, catalog).gather(correlation(), runbook("restart-worker"))
    assert (
        str(evidence.error)
        == "refused: restart-worker has risk high; only risk: read actions run as evidence"
    )
    assert not marker.exists()


async def test_refusals(sshd: SshServer) -> None:
    found = await source(sshd).gather(correlation(), runbook("no-such-action", "grep-for"))
    assert [str(evidence.error) for evidence in found] == [
        "refused: 'no-such-action' is not an action in actions.yml",
        "refused: grep-for: parameter 'needle' comes from a proposal, and there is none",
    ]


async def test_an_unknown_host_is_named(sshd: SshServer) -> None:
    evidence = await gather_one(sshd, "worker-log", instance="web-9:9100")
    assert str(evidence.title) == "worker.md: worker-log on web-9:9100"
    assert evidence.error is not None
    assert "'web-9:9100'" in str(evidence.error) and "hosts:" in str(evidence.error)


async def test_commands_run_together_and_fail_alone(sshd: SshServer) -> None:
    found = await source(sshd).gather(correlation(), runbook("slow", "failing", "worker-log", "config-dump"))
    assert [str(evidence.title).split(": ")[1] for evidence in found] == [
        "slow on web-1",
        "failing on web-1",
        "worker-log on web-1",
        "config-dump on web-1",
    ]
    assert [evidence.error is None for evidence in found] == [False, False, True, True]


async def test_an_execution_error_is_evidence_not_an_exception(sshd: SshServer) -> None:
    inventory = Inventory({"web-1": sshd.host(known_hosts=sshd.root / "absent")})
    commands = CommandSource(parse_catalog(CATALOG), inventory, SshExecutor(inventory))
    [evidence] = await commands.gather(correlation(), runbook("worker-log"))
    assert evidence.error is not None and "known_hosts" in str(evidence.error)


async def test_no_command_queries_no_evidence(sshd: SshServer) -> None:
    assert await source(sshd).gather(correlation(), runbook()) == []
