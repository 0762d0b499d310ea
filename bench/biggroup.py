"""One notification of 10,000 alerts, and the small deliveries posted while it is taken in, correlated and triaged.

    .venv/bin/python bench/biggroup.py [--alerts 10000] [--rate 20] [--duration 20]

One fresh `bench/server.py` (the real app, triage workers on, a new SQLite file) listens on 127.0.0.1. Small
deliveries (bench/payloads.py: 10 alerts, each a new group) go out open loop at --rate for --duration, on
keep-alive connections like bench/loadgen.py's, each request's latency counted from its due time. --lead seconds
in, one notification of --alerts alerts in a single group (compact labels, so that it fits webhook.max_body) is
posted, and its delivery and triage job are watched from a read-only connection to the SQLite file (every 50 ms)
until it is correlated and triaged.

Printed: how long the big one took to be accepted, correlated and triaged; the small deliveries' statuses and
latency percentiles (of every answer, whatever its status) overall and by what the big one was doing when they
were due (being taken in, correlated, triaged, or nothing). A warm-up of 2 s at 10/s comes first. Results also go to bench/results/biggroup-*.json. Bounded: the small load lasts --duration
seconds, the big delivery is followed for at most --follow seconds, and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import sqlite3
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import loadgen  # bench/loadgen.py and bench/intake.py: this script's directory is first on sys.path
import payloads
from intake import HOST, RESULTS, WEBHOOK, Scenario, Server, fsync_probe, git_revision, host

CHANGES = ("opened", "updated", "resolved", "unchanged")
STARTS_AT = "2026-11-24T03:02:11.284Z"
PHASES = ("before", "intake", "correlating", "triage", "after")


@dataclass(frozen=True)
class Sample:
    due: float  # seconds after the start of the load
    latency: float | None  # seconds, from the due time to the end of the answer; None on a connection error
    status: int | None
    error: str | None = None


class Recorder(loadgen.Client):
    """loadgen's client (keep-alive connections, opened as needed), keeping each request's due time and outcome."""

    def __init__(self, port: int, start: float) -> None:
        super().__init__(HOST, port, 256)
        self.start = start
        self.samples: list[Sample] = []

    async def request(self, head: bytes, body: bytes, due: float) -> None:
        loop = asyncio.get_running_loop()
        async with self.slots:
            connection: loadgen.Connection | None = None
            try:
                async with asyncio.timeout(loadgen.REQUEST_TIMEOUT):
                    connection = await self._connection()
                    connection.writer.write(head + body)
                    status, keep = await loadgen._response(connection.reader)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
                self.samples.append(Sample(due - self.start, None, None, type(error).__name__))
                if connection is not None:
                    connection.writer.close()
                return
            self.samples.append(Sample(due - self.start, loop.time() - due, status))
            if keep:
                self.idle.append(connection)
            else:
                connection.writer.close()


async def small_load(port: int, rate: float, duration: float) -> list[Sample]:
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    client = Recorder(port, start)
    template, tasks = payloads.template(), []
    for n in range(round(rate * duration)):
        due = start + n / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        body = payloads.render(template, 21, 0, n + 1)
        head = (
            f"POST {WEBHOOK} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        tasks.append(asyncio.create_task(client.request(head, body, due)))
    await asyncio.gather(*tasks)
    for connection in client.idle:
        connection.writer.close()
    return client.samples


def big_body(alerts: int) -> tuple[bytes, str]:
    """A firing notification of `alerts` alerts of one rule on as many targets, and its group key."""
    group_key = '{}:{alertname="TargetDown", cluster="bench-big"}'
    items = [
        {
            "status": "firing",
            "labels": {"alertname": "TargetDown", "instance": f"h{index}:9100", "job": "node"},
            "annotations": {},
            "startsAt": STARTS_AT,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": f"{index:016x}",
        }
        for index in range(alerts)
    ]
    body = {
        "receiver": "aiops",
        "status": "firing",
        "alerts": items,
        "groupLabels": {"alertname": "TargetDown", "cluster": "bench-big"},
        "commonLabels": {"alertname": "TargetDown", "cluster": "bench-big", "job": "node"},
        "commonAnnotations": {"summary": "Many targets are down"},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }
    return json.dumps(body, separators=(",", ":")).encode(), group_key


def post(port: int, body: bytes) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        connection.request("POST", WEBHOOK, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    with contextlib.suppress(ValueError):
        return response.status, json.loads(answer)
    return response.status, {"body": answer[:200].decode(errors="replace")}


def look(database: Path, delivery: int, group_key: str) -> tuple[str | None, str | None]:
    """The delivery's recorded change and its triage job's state, read without blocking the server (WAL)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
        row = db.execute("SELECT change FROM deliveries WHERE id = ?", (delivery,)).fetchone()
        job = db.execute("SELECT state FROM jobs WHERE serial_key = ?", (group_key,)).fetchone()
    return (row[0] if row else None), (job[0] if job else None)


async def big_one(
    server: Server, body: bytes, group_key: str, lead: float, limit: float, start: float
) -> dict[str, Any]:
    """Post the big notification `lead` seconds after `start`; times (seconds after `start`) of its answer, its
    correlation and the end of its triage job."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start + lead - loop.time()))
    posted = loop.time() - start
    status, answer = await asyncio.to_thread(post, server.port, body)
    found: dict[str, Any] = {"bytes": len(body), "status": status, "posted_at": round(posted, 3)}
    found["accepted_at"] = round(loop.time() - start, 3)
    if status != 200:
        return {**found, "answer": answer}
    while loop.time() - start - posted < limit:
        change, job = await asyncio.to_thread(look, server.database, int(answer["delivery"]), group_key)
        if "correlated_at" not in found and change in CHANGES:
            found.update(correlated_at=round(loop.time() - start, 3), change=change)
        if job not in ("pending", "running", None):
            found.update(triaged_at=round(loop.time() - start, 3), job_state=job)
            break
        await asyncio.sleep(0.05)
    return found


def phase(sample: Sample, big: dict[str, Any]) -> str:
    """What the big delivery was doing when the sample was due."""
    marks = [big.get(key) for key in ("posted_at", "accepted_at", "correlated_at", "triaged_at")]
    for name, mark in zip(PHASES, marks, strict=False):
        if mark is None or sample.due < mark:
            return name
    return PHASES[-1]


def figures(samples: list[Sample]) -> dict[str, Any]:
    """Statuses, and latency percentiles of every answer whatever its status (a 503 after 5 s counts as slow)."""
    answered = sorted(s.latency for s in samples if s.latency is not None)
    statuses = Counter(str(s.status) if s.status else s.error or "?" for s in samples)
    latency = {f"p{q}": round(loadgen.percentile(answered, q), 1) for q in (50, 99)}
    return {
        "sent": len(samples),
        "statuses": dict(sorted(statuses.items())),
        "latency_ms": {**latency, "max": round(answered[-1] * 1000, 1) if answered else None},
    }


def stored(database: Path, group_key: str) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
        incidents = db.execute("SELECT count(*) FROM incidents WHERE group_key = ?", (group_key,)).fetchone()
        alerts = db.execute(
            "SELECT count(*) FROM alerts a JOIN incidents i ON i.id = a.incident_id WHERE i.group_key = ?",
            (group_key,),
        ).fetchone()
        deliveries = db.execute("SELECT count(*) FROM deliveries").fetchone()
    return {"big_incidents": incidents[0], "big_alerts": alerts[0], "deliveries": deliveries[0]}


async def measure(server: Server, args: argparse.Namespace, body: bytes, group_key: str) -> dict[str, Any]:
    warm_up = await small_load(server.port, 10, 2.0)  # imports, caches, connections; triaged meanwhile
    await asyncio.sleep(2.0)
    start = asyncio.get_running_loop().time() + 0.05
    samples, big = await asyncio.gather(
        small_load(server.port, args.rate, args.duration),
        big_one(server, body, group_key, args.lead, args.follow, start),
    )
    by_phase = {name: figures([s for s in samples if phase(s, big) == name]) for name in PHASES}
    return {"warm_up": figures(warm_up), "big": big, "small": figures(samples), "small_by_phase": by_phase}


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    body, group_key = big_body(args.alerts)
    server = Server(workdir, Scenario("biggroup", None))
    try:
        server.start()
        result = asyncio.run(measure(server, args, body, group_key))
        result["stored"] = stored(server.database, group_key)
        result["commit_refusals_logged"] = server.stderr().count("could not commit a delivery")
        return {"package": server.package, **result}
    finally:
        server.stop()


def report(result: dict[str, Any], args: argparse.Namespace) -> str:
    big, small, kept = result["big"], result["small"], result["stored"]
    lines = [
        f"big: {args.alerts} alerts, {big['bytes']} bytes, posted at {big['posted_at']} s: HTTP {big['status']}"
        f" at {big['accepted_at']} s, correlated ({big.get('change')}) at {big.get('correlated_at')} s, triage"
        f" {big.get('job_state')} at {big.get('triaged_at')} s; stored {kept['big_incidents']} incident(s) with"
        f" {kept['big_alerts']} alerts",
        f"small: {args.rate:g}/s open loop for {args.duration:g} s: {_line(small)}",
    ]
    for name, found in result["small_by_phase"].items():
        if found["sent"]:
            lines.append(f"  due while the big one was {name:<11}: {_line(found)}")
    lines.append(
        f"(warm-up before: {_line(result['warm_up'])})\n"
        f"server logged {result['commit_refusals_logged']} refused commit(s); {kept['deliveries']} deliveries"
        f" stored; aiops from {result['package']}"
    )
    return "\n".join(lines)


def _line(found: dict[str, Any]) -> str:
    latency = found["latency_ms"]
    return (
        f"{found['sent']} sent, statuses {found['statuses']}, latency p50 {latency['p50']} ms,"
        f" p99 {latency['p99']} ms, max {latency['max']} ms"
    )


def machine(workdir: Path) -> dict[str, Any]:
    """What the figures depend on (bench/intake.py's fuller version also needs wrk)."""
    return {**host(), "fsync_ms": fsync_probe(workdir), "git": git_revision()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=10_000, help="alerts in the big notification")
    parser.add_argument("--rate", type=float, default=20.0, help="small deliveries per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of small deliveries")
    parser.add_argument("--lead", type=float, default=1.0, help="seconds of small load before the big one")
    parser.add_argument("--follow", type=float, default=120.0, help="most seconds to follow the big one")
    args = parser.parse_args()
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with tempfile.TemporaryDirectory(prefix="aiops-bench-") as directory:
        info = machine(Path(directory))
        print(
            f"aiops big-group benchmark, {info['nproc']} CPUs, code {info['git']},"
            f" fdatasync p50 {info['fsync_ms']['p50']} ms, load average {info['load_average']}",
            flush=True,
        )
        result = run(args, Path(directory))
    text = report(result, args)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = started.replace(":", "").replace("-", "")
    document = {"started": started, "options": vars(args), "machine": info, **result, "summary": text}
    (RESULTS / f"biggroup-{stamp}.json").write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
