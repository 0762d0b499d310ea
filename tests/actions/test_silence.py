"""The silence action against a real Alertmanager: what it creates, what that silences, and how it fails.

Status codes Alertmanager cannot be made to answer (503, 429, 401, a body without an id) come from an
`httpx.MockTransport` instead.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiops.actions.approvals import Actor
from aiops.actions.silence import SilenceError, create_silence, equality_matchers, expire_silence
from aiops.store import actions
from tests.actions.test_remediation import work
from tests.conftest import DATA
from tests.support import stack as s
from tests.support.app import AUTH
from tests.support.binaries import free_port

pytestmark = pytest.mark.timeout(120)

DISK = {"alertname": "HostOutOfDiskSpace", "instance": "web-1:9100", "severity": "warning", "mountpoint": "/"}
COMMENT = "aiops incident #7: http://aiops.example/incidents/7"
PASSWORD = "am-Qz71xWv3Lp9Kd2"  # in the URL's user info; no message may show it
LITERAL = 'web-1.*"|x'
DECOYS = ('web-1xyz"', "x")  # what LITERAL would match as a regular expression


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s.ManagedProcess]:
    port = free_port()
    workdir = tmp_path_factory.mktemp("alertmanager")
    process = s.alertmanager(workdir, port=port, route={"receiver": "null"}, receivers=[{"name": "null"}])
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def url(alertmanager: s.ManagedProcess) -> str:
    """Alertmanager's base URL, with credentials it ignores but aiops must never show."""
    return alertmanager.ready_url.removesuffix("/-/ready").replace("://", f"://aiops:{PASSWORD}@")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # Loopback traffic must never go through a proxy named in the environment.
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


async def get(client: httpx.AsyncClient, url: str, path: str, **params: str) -> Any:
    response = await client.get(url + path, params=params)
    assert response.status_code == 200, f"GET {path}: HTTP {response.status_code} {response.text}"
    return response.json()


def matcher_set(matchers: list[dict[str, Any]]) -> set[tuple[str, str, bool, bool]]:
    return {(m["name"], m["value"], m["isRegex"], m["isEqual"]) for m in matchers}


async def refusal(
    url: str,
    labels: dict[str, str],
    seconds: int = 3600,
    timeout: float = 10.0,  # noqa: ASYNC109 - passed on to create_silence
    transport: httpx.AsyncBaseTransport | None = None,
) -> SilenceError:
    """The error `create_silence` raises, after checking it does not show the URL's password."""
    async with httpx.AsyncClient(trust_env=False, transport=transport) as http:
        with pytest.raises(SilenceError) as raised:
            await create_silence(
                http, url, labels, seconds=seconds, created_by="alice", comment=COMMENT, timeout=timeout
            )
    assert PASSWORD not in str(raised.value)
    return raised.value


async def test_silence_matches_the_alert_labels_for_its_duration(client: httpx.AsyncClient, url: str) -> None:
    silence_id = await create_silence(client, url, DISK, seconds=7200, created_by="alice", comment=COMMENT)
    silence = await get(client, url, f"/api/v2/silence/{silence_id}")
    assert silence["status"]["state"] == "active"
    assert matcher_set(silence["matchers"]) == {(name, value, False, True) for name, value in DISK.items()}
    assert (silence["createdBy"], silence["comment"]) == ("alice", COMMENT)
    expected_end = datetime.now(UTC) + timedelta(hours=2)
    assert abs(datetime.fromisoformat(silence["endsAt"]) - expected_end) < timedelta(minutes=1)
    listed = await get(client, url, "/api/v2/silences")
    assert silence_id in {item["id"] for item in listed}


async def test_values_are_matched_literally(
    client: httpx.AsyncClient, url: str, alertmanager: s.ManagedProcess
) -> None:
    assert all(re.fullmatch(LITERAL, decoy) for decoy in DECOYS), "a decoy would not show a regex match"
    exact = {"alertname": "SilenceLiteral", "instance": LITERAL}
    alerts = [{"labels": exact}] + [{"labels": {**exact, "instance": decoy}} for decoy in DECOYS]
    posted = await client.post(url + "/api/v2/alerts", json=alerts)
    assert posted.status_code == 200, posted.text

    silence_id = await create_silence(client, url, exact, seconds=600, created_by="alice", comment=COMMENT)
    silence = await get(client, url, f"/api/v2/silence/{silence_id}")
    assert matcher_set(silence["matchers"]) == {(k, v, False, True) for k, v in exact.items()}

    silenced_by = await until_exact_silenced(client, url, silence_id, alertmanager)
    assert silenced_by == {LITERAL: [silence_id], **{decoy: [] for decoy in DECOYS}}


async def until_exact_silenced(
    client: httpx.AsyncClient, url: str, silence_id: str, alertmanager: s.ManagedProcess
) -> dict[str, list[str]]:
    """`silencedBy` of each SilenceLiteral alert by instance, once the exact one is silenced (Alertmanager
    marks alerts asynchronously)."""
    deadline = time.monotonic() + 10
    while True:
        alerts = await get(client, url, "/api/v2/alerts", filter='alertname="SilenceLiteral"')
        silenced_by = {alert["labels"]["instance"]: alert["status"]["silencedBy"] for alert in alerts}
        if silenced_by.get(LITERAL) == [silence_id] or time.monotonic() > deadline:
            assert silenced_by.get(LITERAL) == [silence_id], f"{silenced_by}\n{alertmanager.log()}"
            return silenced_by
        await asyncio.sleep(0.2)


async def test_expire_ends_the_silence(client: httpx.AsyncClient, url: str) -> None:
    silence_id = await create_silence(client, url, DISK, seconds=600, created_by="alice", comment=COMMENT)
    await expire_silence(client, url, silence_id)
    await expire_silence(client, url, silence_id)  # already expired: nothing left to do
    silence = await get(client, url, f"/api/v2/silence/{silence_id}")
    assert silence["status"]["state"] == "expired"

    with pytest.raises(SilenceError) as unknown:
        await expire_silence(client, url, "0b1c2d3e-0000-4000-8000-000000000000")
    assert not unknown.value.retryable
    assert "silence not found" in str(unknown.value) and PASSWORD not in str(unknown.value)


async def test_unreachable_alertmanager_is_retryable() -> None:
    port = free_port()  # closed again: nothing listens there
    error = await refusal(f"http://aiops:{PASSWORD}@127.0.0.1:{port}", DISK)
    assert error.retryable
    assert str(error).startswith(f"Alertmanager at http://127.0.0.1:{port} (alertmanager.url) is unreachable")


async def test_silent_alertmanager_is_retryable() -> None:
    with socket.socket() as listener:  # accepts connections into its backlog, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        started = time.monotonic()
        error = await refusal(f"http://aiops:{PASSWORD}@127.0.0.1:{port}", DISK, timeout=0.5)
    assert error.retryable and time.monotonic() - started < 5
    assert "did not answer within 0.5s" in str(error)


@pytest.mark.parametrize(
    ("labels", "seconds", "text"),
    [
        (DISK, 0, "start time must be before end time"),
        ({"bad-name": "x"}, 3600, 'invalid label name "bad-name"'),
    ],
    ids=["ends-when-it-starts", "invalid-label-name"],
)
async def test_refusal_is_not_retryable_and_quotes_alertmanager(
    url: str, labels: dict[str, str], seconds: int, text: str
) -> None:
    error = await refusal(url, labels, seconds)
    assert not error.retryable
    assert "HTTP 400" in str(error) and text in str(error)


@pytest.mark.parametrize(
    ("status", "body", "retryable", "text"),
    [
        (503, "upstream connect error", True, "HTTP 503: upstream connect error"),
        (429, "slow down", True, "HTTP 429: slow down"),
        (401, "Unauthorized", False, "check the user name and password in alertmanager.url"),
        (400, "x" * 1000, False, "HTTP 400: " + "x" * 299 + "…"),
        (200, "<html>a proxy's login page</html>", False, "without a silenceID"),
    ],
    ids=["unavailable", "too-many-requests", "unauthorized", "long-error-text", "not-alertmanager"],
)
async def test_answers_are_classified(status: int, body: str, retryable: bool, text: str) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, text=body))
    error = await refusal(f"http://aiops:{PASSWORD}@alertmanager:9093", DISK, transport=transport)
    assert error.retryable is retryable
    assert text in str(error) and "x" * 300 not in str(error)


async def test_no_labels_sends_nothing() -> None:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"silenceID": "never"})

    transport = httpx.MockTransport(answer)
    error = await refusal("http://alertmanager:9093", {"alertname": ""}, transport=transport)
    assert not error.retryable and "no labels" in str(error)
    assert requests == []


def test_empty_values_are_left_out() -> None:
    matchers = equality_matchers({**DISK, "job": ""})
    assert matcher_set(matchers) == {(name, value, False, True) for name, value in DISK.items()}


async def test_an_approved_silence_proposal_silences_the_incident(
    app_for: Any, tmp_path: Path, client: httpx.AsyncClient, url: str
) -> None:
    """The built-in action end to end: runbook allows it, an approver approves, the worker creates the silence."""
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "HostOutOfDiskSpace.md").write_text(
        "---\nalerts: [HostOutOfDiskSpace]\nactions: [silence]\n---\n"
    )
    async with app_for(
        runbooks={"dir": str(folder)},
        alertmanager={"url": url},
        remediation={"approvers": {"web": ["alice"]}},
    ) as (web, services):
        answer = await web.post(
            "/webhook/alertmanager", content=(DATA / "firing.json").read_bytes(), headers=AUTH
        )
        await work(services)
        async with services.engine.connect() as conn:
            [proposal] = await actions.pending(conn)
        assert proposal["argv"] == ["silence", "2h"]
        decision = await services.approvals.decide(proposal["id"], True, Actor("web", "alice"))
        assert decision.outcome == "approved" and answer.status_code == 200
        await work(services)
        async with services.engine.connect() as conn:
            done = await actions.proposal(conn, proposal["id"])
            execution = await actions.execution_of(conn, proposal["id"])
    assert done is not None and done["state"] == "succeeded", execution
    silences = await get(client, url, "/api/v2/silences")
    assert execution is not None
    silence_id = execution["stdout"].split()[1]  # "silence <id> for 2h"
    [silence] = [item for item in silences if item["id"] == silence_id]
    assert silence["createdBy"] == "alice" and silence["comment"].endswith("/incidents/1")
    labels = json.loads((DATA / "firing.json").read_text())["commonLabels"]
    assert matcher_set(silence["matchers"]) == {(name, value, False, True) for name, value in labels.items()}
    assert silence["status"]["state"] == "active"
