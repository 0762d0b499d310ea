"""Crash safety, restarts and shutdown of a real `aiops serve`: an acknowledged alert is triaged and announced once.

Each test drives `aiops serve` subprocesses against a fake Prometheus whose answers can be made late, so that a
job is caught in the middle of its evidence stage when the process is killed or asked to stop.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.fakes.prometheus import FakePrometheus
from tests.support.service import AiopsProcess, wait_until

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "data"
HEADLINE = "==== [warning]"  # the console channel's headline of an "opened" announcement of firing.json
T = TypeVar("T")
Start = Callable[..., AiopsProcess]


@pytest.fixture
def start_aiops(tmp_path: Path, fake_prometheus: FakePrometheus) -> Iterator[Start]:
    """`start_aiops(queue=...)` → a started `aiops serve` on a SQLite file in tmp_path; stopped at teardown."""
    started: list[AiopsProcess] = []

    def start(**queue: str | int) -> AiopsProcess:
        config = {
            "database": {"url": f"sqlite:///{tmp_path}/aiops.db"},
            "prometheus": {"url": fake_prometheus.url, "timeout": "60s"},
            "queue": {"lease": "3s", "poll_interval": "200ms", "workers": 2, **queue},
        }
        aiops = AiopsProcess(tmp_path, config)
        started.append(aiops)
        aiops.start()
        return aiops

    yield start
    for aiops in started:
        aiops.stop()


def firing(number: int = 0) -> str:
    """firing.json, or (number > 0) the same alert in another group with another fingerprint."""
    payload = json.loads((DATA / "firing.json").read_text())
    if number:
        payload["groupKey"] += f"/copy-{number}"
        payload["alerts"][0]["fingerprint"] = f"{number:016x}"
    return json.dumps(payload)


def post(aiops: AiopsProcess, body: str) -> dict[str, Any]:
    response = httpx.post(
        f"{aiops.url}/webhook/alertmanager",
        content=body.encode(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["status"] == "accepted"
    return answer


def incident(aiops: AiopsProcess, incident_id: int) -> dict[str, Any] | None:
    response = httpx.get(f"{aiops.url}/api/v1/incidents/{incident_id}", timeout=10)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def incidents(aiops: AiopsProcess) -> list[dict[str, Any]]:
    response = httpx.get(f"{aiops.url}/api/v1/incidents", timeout=10)
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()["incidents"]
    return found


def notifications(found: dict[str, Any], purpose: str) -> list[dict[str, Any]]:
    return [note for note in found["notifications"] if note["purpose"] == purpose]


def triaged(found: dict[str, Any] | None) -> bool:
    """A triage whose evidence holds Prometheus series, and its "opened" announcement sent."""
    if found is None or not found["triages"]:
        return False
    evidence = found["triages"][0]["evidence"]
    has_series = any(item["source"] == "prometheus" and item["series"] for item in evidence)
    return has_series and any(note["state"] == "sent" for note in notifications(found, "opened"))


def completed(aiops: AiopsProcess, incident_id: int) -> dict[str, Any] | None:
    found = incident(aiops, incident_id)
    return found if triaged(found) else None


def queries(fake: FakePrometheus) -> int:
    return sum(1 for request in fake.requests if request["path"] == "/api/v1/query_range")


def jobs(tmp_path: Path) -> list[sqlite3.Row]:
    """The queue's rows, read straight from the store (only while no aiops process is running)."""
    with contextlib.closing(sqlite3.connect(tmp_path / "aiops.db")) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM jobs ORDER BY id").fetchall()


def assert_announced_once(found: dict[str, Any]) -> None:
    opened = notifications(found, "opened")
    assert len(opened) == 1, found["notifications"]
    assert opened[0]["state"] == "sent"
    assert opened[0]["attempts"] == 1
    assert len(found["triages"]) == 1
    assert found["triages"][0]["errors"] == []


def test_a_job_killed_mid_triage_is_taken_over_and_announced_once(
    start_aiops: Start, fake_prometheus: FakePrometheus
) -> None:
    fake_prometheus.delay = 30.0
    aiops = start_aiops()
    post(aiops, firing())
    assert fake_prometheus.received.wait(15), "the triage job never queried Prometheus"
    assert queries(fake_prometheus) == 1
    aiops.kill()  # mid-evidence: the job is running under a lease nobody will renew or settle

    fake_prometheus.delay = 0.0
    aiops.start()
    found = wait_until(aiops, "incident 1 triaged after the restart", lambda: completed(aiops, 1), 30)

    assert queries(fake_prometheus) == 2, "the job was not claimed again after its lease ran out"
    assert found["status"] == "open"
    assert_announced_once(found)
    assert aiops.stdout().count(HEADLINE) == 1, aiops.stdout()


def test_a_restart_triages_every_acknowledged_alert(
    tmp_path: Path, start_aiops: Start, fake_prometheus: FakePrometheus
) -> None:
    fake_prometheus.delay = 30.0
    aiops = start_aiops()
    answers = [post(aiops, firing(number)) for number in (1, 2, 3)]
    assert [answer["duplicate"] for answer in answers] == [False, False, False]
    aiops.kill()

    fake_prometheus.delay = 0.0
    aiops.start()

    def all_triaged() -> list[dict[str, Any]] | None:
        found = [incident(aiops, item["id"]) for item in incidents(aiops)]
        done = [item for item in found if triaged(item)]
        return done if len(done) == 3 else None

    found = wait_until(aiops, "three incidents triaged after the restart", all_triaged, 30)
    assert sorted(item["group_key"] for item in found) == sorted(
        json.loads(firing(n))["groupKey"] for n in (1, 2, 3)
    )
    for item in found:
        assert_announced_once(item)
    assert aiops.stdout().count(HEADLINE) == 3, aiops.stdout()
    aiops.kill()
    assert [job["state"] for job in jobs(tmp_path)] == ["done", "done", "done"]


def test_sigterm_lets_the_running_job_finish(
    tmp_path: Path, start_aiops: Start, fake_prometheus: FakePrometheus
) -> None:
    # Longer than the 3s lease, and well inside queue.shutdown_grace (20s by default).
    fake_prometheus.delay = 5.0
    aiops = start_aiops()
    post(aiops, firing())
    assert fake_prometheus.received.wait(15), "the triage job never queried Prometheus"
    asked = time.monotonic()
    time.sleep(3.8)  # out past the lease: renewed, it keeps the pool's idle worker from taking the job over
    assert queries(fake_prometheus) == 1, "a job still running was taken over: its lease was not renewed"
    began = time.monotonic()
    status = aiops.terminate(timeout=30)
    took = time.monotonic() - began

    assert status == 0, aiops.stderr()
    assert time.monotonic() - asked >= 4.5, f"exited {took:.1f}s after SIGTERM, before the job could finish"
    assert took < 20.0, f"took {took:.1f}s to stop"
    assert "handed back" not in aiops.stderr()
    assert [(job["state"], job["attempts"]) for job in jobs(tmp_path)] == [("done", 1)]
    assert aiops.stdout().count(HEADLINE) == 1, aiops.stdout()

    fake_prometheus.delay = 0.0
    aiops.start()
    found = incident(aiops, 1)
    assert triaged(found), found
    assert found is not None
    assert_announced_once(found)
    time.sleep(1.0)  # five poll intervals: a job left behind would have been claimed by now
    assert queries(fake_prometheus) == 1
    assert aiops.stdout().count(HEADLINE) == 1, aiops.stdout()


def test_sigterm_hands_back_a_job_that_cannot_finish_within_the_grace(
    tmp_path: Path, start_aiops: Start, fake_prometheus: FakePrometheus
) -> None:
    # A lease far longer than the test: only a job released on shutdown can be claimed again in time.
    fake_prometheus.delay = 30.0
    aiops = start_aiops(shutdown_grace="1s", lease="120s")
    post(aiops, firing())
    assert fake_prometheus.received.wait(15), "the triage job never queried Prometheus"
    began = time.monotonic()
    status = aiops.terminate(timeout=30)
    took = time.monotonic() - began

    assert status == 0, aiops.stderr()
    assert took < 15.0, f"took {took:.1f}s to stop with a 1s shutdown_grace"
    assert "job 1 handed back to the queue" in aiops.stderr()
    [job] = jobs(tmp_path)
    assert (job["state"], job["lease_owner"], job["attempts"]) == ("pending", None, 0)

    fake_prometheus.delay = 0.0
    aiops.start()
    found = wait_until(aiops, "the released job triaged after the restart", lambda: completed(aiops, 1), 20)
    assert queries(fake_prometheus) == 2
    assert_announced_once(found)
    assert aiops.stdout().count(HEADLINE) == 1, aiops.stdout()


def test_a_redelivery_is_counted_not_triaged_again_and_resolution_is_announced(
    tmp_path: Path, start_aiops: Start, fake_prometheus: FakePrometheus
) -> None:
    aiops = start_aiops()
    first, again = post(aiops, firing()), post(aiops, firing())
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert again["delivery"] == first["delivery"]

    found = wait_until(aiops, "incident 1 triaged", lambda: completed(aiops, 1), 20)
    assert_announced_once(found)

    resolved = post(aiops, (DATA / "resolved.json").read_text())
    assert resolved["duplicate"] is False

    def resolution() -> dict[str, Any] | None:
        found = incident(aiops, 1)
        if found is None or found["status"] != "resolved":
            return None
        return found if any(note["state"] == "sent" for note in notifications(found, "resolved")) else None

    found = wait_until(aiops, "incident 1 resolved and announced", resolution, 20)
    assert found["resolved_at"] is not None
    [announced] = notifications(found, "resolved")
    assert announced["attempts"] == 1
    assert_announced_once(found)  # still one triage and one "opened"
    assert [item["id"] for item in incidents(aiops)] == [1]
    assert queries(fake_prometheus) == 1
    assert aiops.stdout().count(HEADLINE) == 1, aiops.stdout()
    assert aiops.stdout().count("==== [") == 2, aiops.stdout()  # "opened", then "resolved"
    aiops.kill()
    assert [job["state"] for job in jobs(tmp_path)] == ["done", "done"]
