"""Alert storm benchmark: N new alert groups posted at once to `aiops serve`, the model answering after a delay.

    .venv/bin/python bench/storm.py --groups 100 --delay 20
    .venv/bin/python bench/storm.py --groups 950 --delay 0
    .venv/bin/python bench/storm.py --groups 200 --delays 0,5,20,60 --deadline 600
    .venv/bin/python bench/storm.py --groups 100 --delay 20 --set llm.concurrency=8 --set queue.workers=4
    .venv/bin/python bench/storm.py --at HEAD ...      # the committed code, not the work tree

For each delay: a fresh `aiops serve` subprocess (a new SQLite file, the repository's runbooks/, a webhook token,
the console channel writing to a file, no Prometheus) whose `llm` points at a fake MiniMax in this process
(tests/fakes/minimax.py) that answers every call with a valid diagnosis after `delay` seconds. The groups come
from the bundled alerting rules (bench/storm_payloads.py); all are posted at once, each on its own connection,
and retried on 5xx like Alertmanager. Everything listens on 127.0.0.1.

Measured per group, from its arrival (`deliveries.received_at`) and from its post: the first announcement of its
incident (earliest `notifications.sent_at`; the console records what it prints as sent) and the model's
diagnosis (the first `triages` row of the incident whose diagnosis has `"source": "llm"`, at its
`diagnosed_at` if the schema has one, else `created_at`). Also: model calls and peak concurrent calls (the fake's
counters), tokens (`aiops_llm_tokens_total` from /metrics), the server's peak RSS (VmHWM) and CPU, clusters when
the store has them, and throughput: groups / time from the first post until every incident was announced.

A run ends when every incident is announced and diagnosed by the model (or no job is left to diagnose it), or
at `--deadline` seconds after the first post, whichever comes first; figures are then partial and say so (a
percentile that falls on a group not yet announced is shown as "> elapsed"). Results go to bench/results/
(JSON and Markdown) and a summary is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import storm_payloads
import yaml
from intake import host, save_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fakes.minimax

from tests.fakes.minimax import KEY, FakeMiniMax, Reply  # noqa: E402

RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"
TOKEN = "storm-bench-webhook-token-0123456789"
WEBHOOK = "/webhook/alertmanager"
POLL = 1.0  # seconds between looks at the store
POST_ATTEMPTS = 6
_ALERTNAME = re.compile(r"alertname\W{1,4}([A-Za-z][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Options:
    groups: int
    delays: tuple[float, ...]
    seed: int
    deadline: float
    overrides: tuple[str, ...]
    at: str | None


@dataclass
class Post:
    """One group's delivery as the client saw it."""

    group_key: str
    posted_at: float = 0.0
    answered_at: float | None = None
    status: int | None = None  # of the last attempt
    tries: list[str] = field(default_factory=list)  # what each attempt got: a status, or the error's type
    delivery_id: int | None = None
    error: str | None = None


# --- the code, the model and the server ---------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """Where the server's package, runbooks and rules come from: the work tree, or a commit exported."""

    label: str
    pythonpath: str | None
    root: Path


def code_at(revision: str | None, workdir: Path) -> Code:
    head = _git("rev-parse", "--short", "HEAD") or "?"
    if revision is None:
        dirty = _git("status", "--porcelain", "--", "aiops", "runbooks", "rules")
        # On PYTHONPATH: an editable install of another checkout must not be what the server runs.
        return Code(f"{head} work tree" + (" (uncommitted changes)" if dirty else ""), str(ROOT), ROOT)
    commit = _git("rev-parse", "--short", revision)
    if not commit:
        raise SystemExit(f"--at {revision}: not a commit of this repository")
    archive = subprocess.run(
        ["git", "archive", commit, "aiops", "runbooks", "rules"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    target = workdir / f"code-{commit}"
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return Code(f"{commit} (exported with git archive)", str(target), target)


def _git(*args: str) -> str:
    """The output of a read-only git command ("" if it printed nothing or failed)."""
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def diagnosis_for(request: dict[str, Any]) -> Reply:
    """A valid answer (aiops/llm/answer.py) naming the alert the prompt is about."""
    prompt = " ".join(str(message.get("content") or "") for message in request.get("messages", []))
    found = _ALERTNAME.search(prompt)
    alert = found.group(1) if found else "the alert"
    answer = {
        "summary": f"{alert} is firing; the evidence is consistent with the alert's own description.",
        "probable_cause": f"The condition {alert} watches for has held past its threshold.",
        "confidence": "medium",
        "evidence": ["E1"],
        "impact": "Services on the affected target may degrade until it is handled.",
        "next_steps": [
            "Follow the runbook's first step",
            "Check whether other targets of the job show the same",
        ],
        "actions": [],
    }
    return Reply(
        content=json.dumps(answer), reasoning="The alert and the runbook agree; no evidence against."
    )


class Server:
    """`aiops serve` on a free loopback port, with a new SQLite file; its output kept in files."""

    def __init__(
        self, workdir: Path, code: Code, model: FakeMiniMax, delay: float, overrides: tuple[str, ...]
    ):
        self.workdir = workdir
        self.code = code
        self.port = _free_port()
        self.database = workdir / "aiops.db"
        self.config_path = workdir / "aiops.yml"
        self.config = self._config(model, delay)
        for override in overrides:
            _set(self.config, override)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIOPS_", "MINIMAX_", "PYTHONPATH"))
        }
        if code.pythonpath is not None:
            self.env["PYTHONPATH"] = code.pythonpath
        self.process: subprocess.Popen[bytes] | None = None

    def _config(self, model: FakeMiniMax, delay: float) -> dict[str, Any]:
        call_timeout = max(60.0, delay + 60.0)  # a call is never cut short by the bench's own delay
        return {
            "server": {"listen": f"{HOST}:{self.port}", "language": "en"},
            "webhook": {"token": TOKEN},
            "database": {"url": f"sqlite:///{self.database}"},
            "runbooks": {"dir": str(self.code.root / "runbooks")},
            "channels": {"console": {"enabled": True, "stream": "stdout"}},
            "llm": {
                "api_key": KEY,
                "base_url": model.base_url,
                "call_timeout": call_timeout,
                "incident_deadline": 3 * call_timeout,
            },
        }

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def package(self) -> str:
        """Which `aiops` the server imports, with its environment and working directory."""
        done = subprocess.run(
            [sys.executable, "-c", "import aiops; print(aiops.__file__)"],
            cwd=self.workdir, env=self.env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        return str(Path(done.stdout.strip()).parent) if done.returncode == 0 else "?"

    def start(self, timeout: float = 60.0) -> None:
        command = [sys.executable, "-m", "aiops", "--config", str(self.config_path), "serve"]
        with open(self.workdir / "console.log", "wb") as out, open(self.workdir / "stderr.log", "wb") as err:
            self.process = subprocess.Popen(command, cwd=self.workdir, env=self.env, stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"aiops serve exited with {self.process.returncode}:\n{self.stderr()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"aiops serve did not answer /healthz within {timeout:g}s:\n{self.stderr()}")

    def status(self) -> dict[str, int]:
        """VmHWM and VmRSS in KiB from /proc (the peak is the process's whole life, one storm per process)."""
        assert self.process is not None
        found = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                found[name] = int(value.split()[0])
        return found

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metrics(self) -> dict[str, float]:
        """The model's counters from /metrics: `aiops_llm_tokens_total` by kind, `aiops_llm_calls_total` by outcome."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        found = {}
        for line in text.splitlines():
            match = re.match(r'(aiops_llm_(?:tokens|calls)_total)\{(?:kind|outcome)="([^"]+)"\} (\S+)', line)
            if match:
                found[f"{match.group(1)}:{match.group(2)}"] = float(match.group(3))
        return found

    def stderr(self) -> str:
        return (self.workdir / "stderr.log").read_text(errors="replace")

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _set(config: dict[str, Any], override: str) -> None:
    """`a.b.c=value`: the value is YAML (`8`, `true`, `30s`, `[a, b]`)."""
    path, sep, raw = override.partition("=")
    if not sep or not path:
        raise SystemExit(f"--set {override!r}: expected key.path=value, for example llm.concurrency=8")
    *parents, leaf = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = yaml.safe_load(raw)


# --- the storm ----------------------------------------------------------------------------------------------


async def post_all(url: str, groups: list[storm_payloads.Group]) -> list[Post]:
    """Every group at once, one connection each; a 5xx or a transport error is retried with backoff, as
    Alertmanager retries."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=len(groups), max_keepalive_connections=len(groups))
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30.0) as client:
        posts = [Post(group.group_key) for group in groups]
        await asyncio.gather(
            *(_post(client, group.encoded(), post) for group, post in zip(groups, posts, strict=True))
        )
    return posts


async def _post(client: httpx.AsyncClient, body: bytes, post: Post) -> None:
    post.posted_at = time.time()
    for attempt in range(POST_ATTEMPTS):
        try:
            response = await client.post(WEBHOOK, content=body)
        except httpx.HTTPError as error:
            post.error, post.status = f"{type(error).__name__}: {error}", None
            post.tries.append(type(error).__name__)
        else:
            post.status, post.answered_at = response.status_code, time.time()
            post.tries.append(str(response.status_code))
            if response.status_code < 500:
                if response.status_code == 200:
                    post.delivery_id = int(response.json()["delivery"])
                return
        await asyncio.sleep(0.5 * 2**attempt)


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _count(db: sqlite3.Connection, sql: str) -> int:
    return int(db.execute(sql).fetchone()[0])


def snapshot(database: Path) -> dict[str, Any]:
    """Per delivery: arrival, incident, first announcement, first model diagnosis; and jobs left, clusters (when
    the schema has them)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as db:
        triage_columns, incident_columns = columns(db, "triages"), columns(db, "incidents")
        diagnosed = (
            "coalesce(t.diagnosed_at, t.created_at)" if "diagnosed_at" in triage_columns else "t.created_at"
        )
        llm = "CASE WHEN json_valid(t.diagnosis) THEN json_extract(t.diagnosis, '$.source') END = 'llm'"
        rows = db.execute(
            "SELECT d.id, d.group_key, d.received_at, d.incident_id,"
            " (SELECT min(n.sent_at) FROM notifications n WHERE n.incident_id = d.incident_id) AS announced_at,"
            f" (SELECT min({diagnosed}) FROM triages t WHERE t.incident_id = d.incident_id AND {llm}) AS diagnosed_at"
            " FROM deliveries d"
        ).fetchall()
        left = _count(db, "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')")
        clusters = clustered = None
        if columns(db, "clusters"):
            clusters = _count(db, "SELECT count(*) FROM clusters")
        if "cluster_id" in incident_columns:
            clustered = _count(db, "SELECT count(*) FROM incidents WHERE cluster_id IS NOT NULL")
            if clusters is None:
                clusters = _count(db, "SELECT count(DISTINCT cluster_id) FROM incidents")
    keys = ("delivery_id", "group_key", "received_at", "incident_id", "announced_at", "diagnosed_at")
    return {
        "deliveries": {row[1]: dict(zip(keys, row, strict=True)) for row in rows},
        "jobs_left": left,
        "clusters": clusters,
        "clustered_incidents": clustered,
    }


def finished(state: dict[str, Any], expected: int) -> bool:
    """Every incident announced, and diagnosed by the model unless no job is left that could diagnose it."""
    found = state["deliveries"].values()
    if len(found) < expected or any(row["announced_at"] is None for row in found):
        return False
    return state["jobs_left"] == 0 or all(row["diagnosed_at"] is not None for row in found)


def one_storm(
    options: Options, delay: float, code: Code, groups: list[storm_payloads.Group], workdir: Path
) -> dict[str, Any]:
    model = FakeMiniMax().start()
    model.delay = delay
    model.responder = diagnosis_for
    server = Server(workdir, code, model, delay, options.overrides)
    try:
        server.start()
        package, cpu_before = server.package(), server.cpu_seconds()
        print(
            f"  delay {delay:g}s: server up on {server.url} (aiops from {package}); posting {len(groups)} groups",
            flush=True,
        )
        started = time.time()
        posts = asyncio.run(post_all(server.url, groups))
        posted = time.time()
        accepted = sum(post.status == 200 for post in posts)
        print(
            f"  posted in {posted - started:.1f}s: {accepted} accepted; waiting (deadline {options.deadline:g}s)",
            flush=True,
        )
        state, timeline, complete = _wait(server, model, started, accepted, options.deadline)
        ended = time.time()
        record = {
            "delay": delay,
            "config": server.config | {"llm": {**server.config["llm"], "api_key": "(fake)"}},
            "aiops_package": package,
            "complete": complete,
            "outcome": "complete" if complete else f"deadline of {options.deadline:g}s passed",
            "seconds": round(ended - started, 1),
            "post_seconds": round(posted - started, 2),
            "posts": _posts(posts, started),
            "server": {
                **server.status(),
                "cpu_seconds": round(server.cpu_seconds() - cpu_before, 1),
                "metrics": server.metrics(),
            },
            "model": {
                "calls": model.calls,
                "peak_in_flight": model.peak_in_flight,
                "in_flight_at_end": model.in_flight,
            },
            "timeline": timeline,
        }
        record.update(_figures(state, posts, started, ended, complete))
        record["server"]["exit"] = server.stop()
        log = server.stderr()
        record["server"]["log_lines"] = _log_lines(log)
        record["server"]["log_tail"] = log.splitlines()[-8:]
        return record
    finally:
        server.stop()
        model.stop()


def _wait(
    server: Server, model: FakeMiniMax, started: float, expected: int, deadline: float
) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    timeline = []
    while True:
        state = snapshot(server.database)
        rows = state["deliveries"].values()
        now = time.time()
        timeline.append({
            "t": round(now - started, 1),
            "announced": sum(row["announced_at"] is not None for row in rows),
            "diagnosed": sum(row["diagnosed_at"] is not None for row in rows),
            "jobs_left": state["jobs_left"],
            "model_in_flight": model.in_flight,
        })  # fmt: skip
        if finished(state, expected):
            return state, timeline, True
        if now - started >= deadline:
            return state, timeline, False
        if len(timeline) % 30 == 0:
            point = timeline[-1]
            print(
                f"    t={point['t']:.0f}s announced {point['announced']}/{expected}, diagnosed {point['diagnosed']},"
                f" jobs left {point['jobs_left']}, model calls in flight {point['model_in_flight']}",
                flush=True,
            )
        time.sleep(POLL)


# --- figures ------------------------------------------------------------------------------------------------


def percentiles(values: list[float | None], observed_for: float) -> dict[str, Any]:
    """p50, p95 and max over every group; a group without a value yet counts as longer than `observed_for`,
    and a percentile that falls on one is None (shown as "> observed_for")."""
    ordered = sorted(values, key=lambda value: (value is None, value or 0.0))
    missing = sum(value is None for value in values)

    def rank(q: float) -> float | None:
        if not ordered:
            return None
        value = ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank
        return None if value is None else round(value, 2)

    return {
        "p50": rank(0.50),
        "p95": rank(0.95),
        "max": rank(1.0),
        "missing": missing,
        "observed_for": round(observed_for, 1),
    }


def _figures(
    state: dict[str, Any], posts: list[Post], started: float, ended: float, complete: bool
) -> dict[str, Any]:
    rows = state["deliveries"]
    announce, diagnose, announce_post, diagnose_post, with_model = [], [], [], [], 0
    last_announcement = None
    for post in posts:
        row = rows.get(post.group_key)
        arrived = row["received_at"] if row else None
        announced = row["announced_at"] if row else None
        diagnosed = row["diagnosed_at"] if row else None
        announce.append(None if announced is None else announced - arrived)
        diagnose.append(None if diagnosed is None else diagnosed - arrived)
        announce_post.append(None if announced is None else announced - post.posted_at)
        diagnose_post.append(None if diagnosed is None else diagnosed - post.posted_at)
        with_model += diagnosed is not None and announced is not None and diagnosed <= announced + 0.001
        if announced is not None:
            last_announcement = max(last_announcement or announced, announced)
    span = ended - started
    announced = sum(value is not None for value in announce)
    all_announced = announced == len(posts) and last_announcement is not None
    throughput = len(posts) / (last_announcement - started) if all_announced else announced / span
    arrivals = [row["received_at"] for row in rows.values()]
    return {
        "incidents": len({row["incident_id"] for row in rows.values() if row["incident_id"] is not None}),
        "announced": announced,
        "diagnosed_by_model": sum(value is not None for value in diagnose),
        "first_announcement_had_model_diagnosis": with_model,
        "to_announcement_s": percentiles(announce, span),
        "to_diagnosis_s": percentiles(diagnose, span),
        "to_announcement_from_post_s": percentiles(announce_post, span),
        "to_diagnosis_from_post_s": percentiles(diagnose_post, span),
        "all_announced_after_s": round(last_announcement - started, 1) if all_announced else None,
        "throughput_groups_per_s": round(throughput, 3),
        "throughput_is_partial": not all_announced,
        "arrival_spread_s": round(max(arrivals) - min(arrivals), 2) if arrivals else None,
        "jobs_left": state["jobs_left"],
        "clusters": state["clusters"],
        "clustered_incidents": state["clustered_incidents"],
        "complete": complete,
    }


def _posts(posts: list[Post], started: float) -> dict[str, Any]:
    statuses = Counter(str(post.status) for post in posts)
    latency = [post.answered_at - post.posted_at if post.answered_at else None for post in posts]
    return {
        "statuses": dict(statuses),
        "attempts": dict(Counter(outcome for post in posts for outcome in post.tries)),
        "retried": sum(len(post.tries) > 1 for post in posts),
        "errors": sorted({post.error for post in posts if post.error})[:5],
        "answer_s": percentiles(latency, max((p.answered_at or started) for p in posts) - started),
    }


def _log_lines(log: str) -> dict[str, Any]:
    """Lines per level (WARNING and worse), and the first few distinct messages of each, without their times."""
    found: dict[str, Any] = {}
    for line in log.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in ("WARNING", "ERROR", "CRITICAL"):
            level = found.setdefault(parts[2], {"lines": 0, "first": []})
            level["lines"] += 1
            message = re.sub(r"\d+", "N", parts[3])[:300]
            if message not in level["first"] and len(level["first"]) < 5:
                level["first"].append(message)
    return found


# --- machine and report -------------------------------------------------------------------------------------


def _seconds(figure: float | None, observed_for: float) -> str:
    return f"> {observed_for:.0f}" if figure is None else f"{figure:.1f}"


def _spread(stats: dict[str, Any]) -> str:
    return " / ".join(_seconds(stats[key], stats["observed_for"]) for key in ("p50", "p95", "max"))


def markdown(report: dict[str, Any]) -> str:
    info, options = report["machine"], report["options"]
    lines = [
        f"Storm run {report['started']} ({report['seconds']:.0f} s), code {report['code']},"
        f" {options['groups']} groups ({report['mix']['alerts']} alerts), seed {options['seed']},"
        f" deadline {options['deadline']:g} s, settings {' '.join(options['overrides']) or '(defaults)'}",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, Linux {info['kernel']},"
        f" Python {info['python']}, SQLite {info['sqlite']}; load average {info['load_average']} at the start.",
        "",
        "| delay s | outcome | announced | to announcement p50 / p95 / max s | model-diagnosed"
        " | to diagnosis p50 / p95 / max s | model calls | peak concurrent | tokens prompt / completion"
        " | groups/s | peak RSS MiB | server CPU s | clusters |",
        "|---:|---|---:|---|---:|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for run in report["runs"]:
        metrics = run["server"]["metrics"]
        tokens = f"{metrics.get('aiops_llm_tokens_total:prompt', 0):.0f} / {metrics.get('aiops_llm_tokens_total:completion', 0):.0f}"
        rate = f"{run['throughput_groups_per_s']}" + (" (partial)" if run["throughput_is_partial"] else "")
        lines.append(
            f"| {run['delay']:g} | {run['outcome']} ({run['seconds']:.0f} s) | {run['announced']}/{options['groups']}"
            f" | {_spread(run['to_announcement_s'])} | {run['diagnosed_by_model']}/{options['groups']}"
            f" | {_spread(run['to_diagnosis_s'])} | {run['model']['calls']} | {run['model']['peak_in_flight']}"
            f" | {tokens} | {rate} | {run['server'].get('VmHWM', 0) / 1024:.0f}"
            f" | {run['server']['cpu_seconds']} | {'-' if run['clusters'] is None else run['clusters']} |"
        )
    lines += [
        "",
        "| delay s | all accepted after s | 5xx answers | groups retried | webhook answer p50 / max s"
        " | arrival spread s | from post: to announcement p50 / p95 / max s | to diagnosis p50 / p95 / max s"
        " | first announcement carried the model's diagnosis |",
        "|---:|---:|---:|---:|---|---:|---|---|---:|",
    ]
    for run in report["runs"]:
        posts = run["posts"]
        errors = sum(
            n for outcome, n in posts["attempts"].items() if not outcome.isdigit() or int(outcome) >= 500
        )
        lines.append(
            f"| {run['delay']:g} | {run['post_seconds']} | {errors} | {posts['retried']}"
            f" | {posts['answer_s']['p50']} / {posts['answer_s']['max']} | {run['arrival_spread_s']}"
            f" | {_spread(run['to_announcement_from_post_s'])} | {_spread(run['to_diagnosis_from_post_s'])}"
            f" | {run['first_announcement_had_model_diagnosis']}/{options['groups']} |"
        )
    mix = report["mix"]
    lines += ["", "Mix (groups per alert name, and per job):", "", "| alertname | groups |", "|---|---:|"]
    lines += [f"| {name} | {count} |" for name, count in mix["by_alertname"].items()]
    lines += ["", "| job | groups |", "|---|---:|"]
    lines += [f"| {name} | {count} |" for name, count in mix["by_job"].items()]
    lines += [
        "",
        "Alerts per group: " + ", ".join(f"{k}: {v}" for k, v in mix["alerts_per_group"].items()) + ".",
    ]
    return "\n".join(lines) + "\n"


def summary_line(run: dict[str, Any], groups: int) -> str:
    return (
        f"  delay {run['delay']:g}s: {run['outcome']} after {run['seconds']:.0f}s; announced {run['announced']}/{groups}"
        f" (p50/p95/max {_spread(run['to_announcement_s'])} s), model-diagnosed {run['diagnosed_by_model']}/{groups}"
        f" ({_spread(run['to_diagnosis_s'])} s); {run['model']['calls']} model calls, peak {run['model']['peak_in_flight']}"
        f" at once; {run['throughput_groups_per_s']} groups/s{' (partial)' if run['throughput_is_partial'] else ''};"
        f" peak RSS {run['server'].get('VmHWM', 0) / 1024:.0f} MiB; webhook answers {run['posts']['attempts']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--groups", type=int, default=100, help="alert groups posted at once")
    parser.add_argument(
        "--delay", type=float, default=20.0, help="seconds the model takes to answer each call"
    )
    parser.add_argument("--delays", help="a sweep, comma-separated (0,5,20,60): one fresh server per delay")
    parser.add_argument("--seed", type=int, default=1, help="the payload mix depends on it alone")
    parser.add_argument(
        "--deadline", type=float, default=1200.0, help="seconds after the first post a run stops"
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="a setting of the service's config, YAML value (llm.concurrency=8); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--at", metavar="REV", help="run the server from this commit (git archive), not the work tree"
    )
    args = parser.parse_args()
    delays = tuple(float(d) for d in args.delays.split(",")) if args.delays else (args.delay,)
    options = Options(args.groups, delays, args.seed, args.deadline, tuple(args.overrides), args.at)
    started_at, clock = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), time.monotonic()
    info = host()
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aiops-storm-") as directory:
        code = code_at(options.at, Path(directory))
        groups = storm_payloads.storm(code.root / "rules", options.groups, options.seed)
        mix = storm_payloads.describe(groups)
        print(
            f"aiops storm benchmark, {info['nproc']} CPUs {info['cpu_model']}, code {code.label}", flush=True
        )
        print(
            f"  {mix['groups']} groups, {mix['alerts']} alerts: {dict(list(mix['by_alertname'].items())[:5])} …"
        )
        runs = []
        for index, delay in enumerate(options.delays):
            workdir = Path(directory) / f"run-{index}"
            workdir.mkdir()
            try:
                runs.append(one_storm(options, delay, code, groups, workdir))
            except RuntimeError as error:  # the server did not start: a bad --set, or the code is broken
                print(f"storm benchmark stopped: {error}", file=sys.stderr)
                return 1
            print(summary_line(runs[-1], options.groups), flush=True)
    report = {
        "started": started_at,
        "seconds": round(time.monotonic() - clock, 1),
        "options": asdict(options),
        "code": code.label,
        "machine": info,
        "mix": mix,
        "runs": runs,
    }
    save_results("storm", started_at, report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
