"""`POST /webhook/alertmanager`: what is accepted, what is refused (and that a refusal changes nothing)."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import DATA
from tests.support.app import AUTH, TOKEN, row_counts

FIRING: dict[str, Any] = json.loads((DATA / "firing.json").read_text())


def payload(**changes: Any) -> bytes:
    body = json.loads(json.dumps(FIRING))
    body.update(changes)
    return json.dumps(body).encode()


def with_alert(**changes: Any) -> bytes:
    body = json.loads(json.dumps(FIRING))
    body["alerts"][0].update(changes)
    return json.dumps(body).encode()


async def test_accepts_and_commits_a_delivery(app_for: Any, engine: AsyncEngine) -> None:
    async with app_for() as (client, _):
        answer = await client.post("/webhook/alertmanager", content=payload(), headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["duplicate"] is False
    assert await row_counts(engine) == {"deliveries": 1, "jobs": 1, "incidents": 0, "alerts": 0}


async def test_redelivery_creates_no_new_work(app_for: Any, engine: AsyncEngine) -> None:
    async with app_for() as (client, _):
        first = await client.post("/webhook/alertmanager", content=payload(), headers=AUTH)
        again = await client.post(
            "/webhook/alertmanager", content=payload(notification_reason="repeat"), headers=AUTH
        )
    assert again.json() == {"status": "accepted", "delivery": first.json()["delivery"], "duplicate": True}
    assert (await row_counts(engine))["jobs"] == 1


async def test_a_changed_status_is_new_work(app_for: Any, engine: AsyncEngine) -> None:
    resolved = (DATA / "resolved.json").read_bytes()
    async with app_for() as (client, _):
        await client.post("/webhook/alertmanager", content=payload(), headers=AUTH)
        answer = await client.post("/webhook/alertmanager", content=resolved, headers=AUTH)
    assert answer.json()["duplicate"] is False
    assert (await row_counts(engine))["jobs"] == 2


BAD_INPUT = [
    ("invalid JSON", "application/json", b'{"version": "4",', 400, "(body): Invalid JSON"),
    ("not an object", "application/json", b"[1, 2]", 400, "(body): Input should be an object"),
    (
        "wrong type",
        "application/json",
        with_alert(labels={"alertname": "X", "n": 5}),
        400,
        "alerts[0].labels.n: Input should be a valid string",
    ),
    (
        "wrong time",
        "application/json",
        with_alert(startsAt="yesterday"),
        400,
        "alerts[0].startsAt: Input should be",
    ),
    (
        "missing field",
        "application/json",
        payload(groupKey=None),
        400,
        "groupKey: Input should be a valid string",
    ),
    (
        "missing key",
        "application/json",
        json.dumps({k: v for k, v in FIRING.items() if k != "alerts"}).encode(),
        400,
        "alerts: is required",
    ),
    (
        "unknown version",
        "application/json",
        payload(version="5"),
        400,
        "version: unsupported version '5'; aiops understands version '4'",
    ),
    (
        "bad status",
        "application/json",
        payload(status="pending"),
        400,
        "status: Input should be 'firing' or 'resolved'",
    ),
    ("empty alerts", "application/json", payload(alerts=[]), 400, "alerts: List should have at least 1 item"),
    (
        "no alertname",
        "application/json",
        with_alert(labels={"instance": "a"}),
        400,
        "alerts[0].labels: has no 'alertname' label",
    ),
    (
        "huge label value",
        "application/json",
        with_alert(labels={"alertname": "X", "big": "x" * 5000}),
        400,
        "alerts[0].labels: value of 'big' is 5000 characters long; the limit is 4096",
    ),
    ("negative truncatedAlerts", "application/json", payload(truncatedAlerts=-1), 400, "truncatedAlerts:"),
    (
        "non-UTF-8",
        "application/json",
        b'{"version": "4", "receiver": "\xff\xfe"}',
        400,
        "body is not valid UTF-8",
    ),
    (
        "wrong content type",
        "text/plain",
        payload(),
        415,
        "Content-Type must be application/json, not text/plain",
    ),
    ("no content type", "", payload(), 415, "not missing"),
    (
        "oversize body",
        "application/json",
        payload(commonAnnotations={"x": "y" * 70_000}),
        413,
        "over the limit of 65536 bytes (webhook.max_body)",
    ),
]


@pytest.mark.parametrize(
    ("content_type", "body", "status", "message"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
async def test_bad_input_is_refused_and_changes_nothing(
    app_for: Any, engine: AsyncEngine, content_type: str, body: bytes, status: int, message: str
) -> None:
    headers = {"Authorization": AUTH["Authorization"]}
    if content_type:
        headers["Content-Type"] = content_type
    async with app_for(webhook={"max_body": "64KiB"}) as (client, _):
        answer = await client.post("/webhook/alertmanager", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert await row_counts(engine) == {"deliveries": 0, "jobs": 0, "incidents": 0, "alerts": 0}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token-0123456789",
        f"Bearer {TOKEN}x",
        f"Token {TOKEN}",
        "Basic Zm9vOmJhcg==",
        "Bearer ",
    ],
)
async def test_credentials_are_required(app_for: Any, engine: AsyncEngine, authorization: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    async with app_for() as (client, _):
        answer = await client.post("/webhook/alertmanager", content=payload(), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert (await row_counts(engine))["deliveries"] == 0


async def test_basic_auth(app_for: Any, engine: AsyncEngine) -> None:
    auth = {
        "basic_auth": {"username": "alertmanager", "password": "basic-password-0123456789"},
        "token": None,
    }
    good = base64.b64encode(b"alertmanager:basic-password-0123456789").decode()
    bad = base64.b64encode(b"alertmanager:basic-password-01234567890").decode()
    async with app_for(webhook=auth) as (client, _):
        refused = await client.post(
            "/webhook/alertmanager",
            content=payload(),
            headers={"Content-Type": "application/json", "Authorization": f"Basic {bad}"},
        )
        accepted = await client.post(
            "/webhook/alertmanager",
            content=payload(),
            headers={"Content-Type": "application/json", "Authorization": f"Basic {good}"},
        )
    assert (refused.status_code, accepted.status_code) == (401, 200)


async def test_size_limit_is_checked_before_reading(app_for: Any) -> None:
    headers = {**AUTH, "Content-Length": str(10 * 1024 * 1024)}
    async with app_for() as (client, _):
        answer = await client.post("/webhook/alertmanager", content=payload(), headers=headers)
    assert answer.status_code == 413 and "10485760 bytes" in answer.json()["error"]


async def test_unwritable_store_answers_503_then_recovers(
    app_for: Any, engine: AsyncEngine, database_url: str
) -> None:
    """Alertmanager retries only 5xx: a store that cannot commit must never get a 4xx or a 2xx."""
    settings = {"webhook": {"commit_timeout": "1s"}, "database": {"sqlite_busy_timeout_ms": 300}}
    async with app_for(**settings) as (client, _):
        release = await _lock_deliveries(database_url)
        try:
            refused = await client.post("/webhook/alertmanager", content=payload(), headers=AUTH)
        finally:
            await release()
        accepted = await client.post("/webhook/alertmanager", content=payload(), headers=AUTH)
        metrics = (await client.get("/metrics")).text
    assert refused.status_code == 503, refused.text
    assert "retry" in refused.json()["error"]
    assert accepted.status_code == 200 and accepted.json()["duplicate"] is False
    assert await row_counts(engine) == {"deliveries": 1, "jobs": 1, "incidents": 0, "alerts": 0}
    assert 'aiops_webhook_requests_total{code="503"} 1.0' in metrics


async def _lock_deliveries(database_url: str) -> Any:
    """Another client takes the store's write lock and holds it until the returned coroutine is awaited."""
    if database_url.startswith("sqlite"):
        holder = sqlite3.connect(Path(database_url.removeprefix("sqlite:///")), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")

        async def release_sqlite() -> None:
            holder.execute("ROLLBACK")
            holder.close()

        return release_sqlite
    connection = await asyncpg.connect(database_url)
    transaction = connection.transaction()
    await transaction.start()
    await connection.execute("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE")

    async def release_postgres() -> None:
        await transaction.rollback()
        await connection.close()

    return release_postgres


@pytest.mark.parametrize("field", ["startsAt", "endsAt"])
@pytest.mark.parametrize("moment", ["9999-12-31T23:00:00-14:00", "0001-01-01T00:30:00+01:00"])
async def test_a_time_that_utc_cannot_hold_is_refused_by_name(
    app_for: Any, engine: AsyncEngine, field: str, moment: str
) -> None:
    """Valid ISO-8601, but a year past 9999 or before 1 once in UTC: a 400 naming the field, not an overflow."""
    async with app_for() as (client, _):
        answer = await client.post(
            "/webhook/alertmanager", content=with_alert(**{field: moment}), headers=AUTH
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == (
        f"alerts[0].{field}: {moment} is outside the years 1 to 9999 once converted to UTC"
    )
    assert await row_counts(engine) == {"deliveries": 0, "jobs": 0, "incidents": 0, "alerts": 0}


@pytest.mark.parametrize("zero", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00", "0001-01-01T08:00:00+08:00"])
async def test_gos_zero_time_still_means_no_end(app_for: Any, engine: AsyncEngine, zero: str) -> None:
    async with app_for() as (client, services):
        answer = await client.post("/webhook/alertmanager", content=with_alert(endsAt=zero), headers=AUTH)
        await services.pipeline.run(answer.json()["delivery"])
    async with engine.connect() as conn:
        ends_at = (await conn.execute(text("SELECT ends_at FROM alerts"))).scalar_one()
    assert ends_at is None


UNSTORABLE = [
    (
        "NUL in the group key",
        payload(groupKey="a\x00b"),
        "groupKey: contains a NUL character (\\u0000), which the store cannot hold",
    ),
    (
        "NUL in a label",
        with_alert(labels={"alertname": "X", "instance": "web-1\x00"}),
        "alerts[0].labels.instance: contains a NUL character",
    ),
    (
        "truncatedAlerts past the column",
        payload(truncatedAlerts=2**31),
        "truncatedAlerts: Input should be less than or equal to 2147483647",
    ),
]


@pytest.mark.parametrize(
    ("body", "message"), [case[1:] for case in UNSTORABLE], ids=[c[0] for c in UNSTORABLE]
)
async def test_what_the_store_cannot_hold_is_refused_not_retried(
    app_for: Any, engine: AsyncEngine, body: bytes, message: str
) -> None:
    """PostgreSQL holds no NUL in text and 4 bytes in an INTEGER: a 503 there would have Alertmanager retry forever."""
    async with app_for() as (client, _):
        answer = await client.post("/webhook/alertmanager", content=body, headers=AUTH)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]
    assert await row_counts(engine) == {"deliveries": 0, "jobs": 0, "incidents": 0, "alerts": 0}


def big_group(alerts: int) -> dict[str, Any]:
    """firing.json with `alerts` alerts, each on its own mount point: big enough to be validated in slices."""
    payload = json.loads((DATA / "firing.json").read_text())
    template = payload["alerts"][0]
    payload["alerts"] = [
        {**template, "labels": {**template["labels"], "mountpoint": f"/m{n}"}, "fingerprint": f"{n:016x}"}
        for n in range(alerts)
    ]
    return payload


@pytest.mark.parametrize("bad", [3, 1234])
async def test_a_big_payload_names_the_alert_at_fault_wherever_it_is(
    app_for: Any, engine: AsyncEngine, bad: int
) -> None:
    payload = big_group(1500)
    payload["alerts"][bad]["startsAt"] = "yesterday"
    async with app_for() as (client, _):
        answer = await client.post("/webhook/alertmanager", content=json.dumps(payload), headers=AUTH)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(f"alerts[{bad}].startsAt: ")
    assert await row_counts(engine) == {"deliveries": 0, "jobs": 0, "incidents": 0, "alerts": 0}


async def test_a_big_payload_is_stored_with_every_alert(app_for: Any, engine: AsyncEngine) -> None:
    async with app_for() as (client, services):
        answer = await client.post("/webhook/alertmanager", content=json.dumps(big_group(1500)), headers=AUTH)
        assert answer.status_code == 200, answer.text
        await services.pipeline.run(answer.json()["delivery"])
    async with engine.connect() as conn:
        mounts = (await conn.execute(text("SELECT labels FROM alerts ORDER BY id"))).scalars().all()
    assert [json.loads(labels)["mountpoint"] for labels in mounts] == [f"/m{n}" for n in range(1500)]
