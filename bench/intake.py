"""Webhook intake benchmark: committed deliveries against a no-op endpoint of the same app, same run.

    .venv/bin/python bench/intake.py            # or: make bench (installs Debian's wrk first)

Every server is a fresh `bench/server.py` process (the real app on uvicorn, one process, triage workers on, a new
SQLite file) listening on 127.0.0.1; the load comes from other processes:

* throughput: `wrk -t1 -c16 --latency` with `webhook.lua` (each request a new group of 10 alerts), no-op endpoint
  then webhook on the same server, one fresh server per round. Only 2xx answers count; afterwards the rows
  added to `deliveries` are checked against the 2xx count (wrk may abandon up to one request per connection
  when it stops, which the server still commits, so rows may exceed 2xx by at most the connection count).
* latency at a fixed rate: `loadgen.py`, open loop at 200 requests/s, latency from each request's due time.

A server is started fresh for each round because a webhook run leaves a triage backlog that would keep the CPU
busy during a following no-op run. Results go to bench/results/ (JSON and Markdown) and a summary is printed.
Bounded: every child has a timeout and the whole run stops by itself (about 3 min 15 s with the defaults).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import payloads

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
HOST = "127.0.0.1"
WEBHOOK = "/webhook/alertmanager"
NOOP = "/noop"
DEADLINE = 290.0  # seconds; phases that would end past it are skipped


@dataclass(frozen=True)
class Scenario:
    name: str
    workers: int | None  # queue.workers; None = the service's default
    triage: bool = True
    throughput_rounds: int = 1
    rate_rounds: int = 1


SCENARIOS = {
    "production": Scenario("production", None, throughput_rounds=2, rate_rounds=1),
    "workers1": Scenario("workers1", 1),
    "intake-only": Scenario("intake-only", None, triage=False),
}


@dataclass(frozen=True)
class Options:
    duration: float
    connections: int
    rate: float
    rate_duration: float
    warmup: float


class Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def left(self) -> float:
        return DEADLINE - (time.monotonic() - self.start)


# --- the server ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Server:
    def __init__(self, workdir: Path, scenario: Scenario) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.database = workdir / "aiops.db"
        self.config = workdir / "aiops.yml"
        config: dict[str, Any] = {
            "server": {"listen": f"{HOST}:{self.port}"},
            "database": {"url": f"sqlite:///{self.database}"},
            "runbooks": {"dir": str(ROOT / "runbooks")},
        }
        if scenario.workers is not None:
            config["queue"] = {"workers": scenario.workers}
        self.config.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.triage = scenario.triage
        self.process: subprocess.Popen[bytes] | None = None
        self.package = "?"

    def start(self, timeout: float = 30.0) -> None:
        command = [sys.executable, str(BENCH / "server.py"), "--config", str(self.config)]
        if not self.triage:
            command.append("--no-workers")
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIOPS_")}
        with open(self.workdir / "stdout.log", "wb") as out, open(self.workdir / "stderr.log", "wb") as err:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bench/server.py exited with {self.process.returncode}:\n{self.stderr()}")
            with contextlib.suppress(OSError):
                if self.get("/healthz") == 200:
                    for line in self.stderr().splitlines():
                        if "aiops package at" in line:
                            self.package = line.rsplit(" ", 1)[-1]
                    return
            time.sleep(0.1)
        raise RuntimeError(f"bench/server.py did not answer /healthz within {timeout}s:\n{self.stderr()}")

    def get(self, path: str) -> int:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            connection.request("GET", path)
            return connection.getresponse().status
        finally:
            connection.close()

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process, all its threads (aiosqlite runs one per connection)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stderr(self) -> str:
        return (self.workdir / "stderr.log").read_text(errors="replace")

    def stop(self, timeout: float = 40.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def counts(self) -> dict[str, int]:
        """Rows in `deliveries` and jobs by state, read from the file (WAL: a reader does not block the server)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10)) as db:
            counts = {"deliveries": int(db.execute("SELECT count(*) FROM deliveries").fetchone()[0])}
            for state, n in db.execute("SELECT state, count(*) FROM jobs GROUP BY state"):
                counts[f"jobs_{state}"] = int(n)
        return counts

    def wait_for_queue(self, timeout: float) -> float | None:
        """Seconds until no triage job is pending or running; None if the queue did not drain in time."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            counts = self.counts()
            if counts.get("jobs_pending", 0) + counts.get("jobs_running", 0) == 0:
                return time.monotonic() - started
            time.sleep(0.2)
        return None


# --- load generators ----------------------------------------------------------------------------------------


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    server: Server, path: str, phase: int, seconds: float, connections: int, body: Path
) -> dict[str, Any]:
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s",
        "-s", str(BENCH / "webhook.lua"), server.url(path), "--", str(body), str(phase),
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH-JSON "))
    raw = json.loads(line.removeprefix("BENCH-JSON "))
    seconds_run = raw["duration_us"] / 1e6
    ok = raw["requests"] - raw["non2xx"]
    latency = {key: round(value / 1000, 2) for key, value in raw["latency_us"].items()}
    errors = sum(raw[key] for key in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    return {
        "tool": "wrk",
        "command": " ".join(command),
        "seconds": round(seconds_run, 3),
        "ok": ok,
        "non2xx": raw["non2xx"],
        "errors": errors,
        "ok_per_second": round(ok / seconds_run, 1),
        # wrk counts statuses >= 400 in non2xx (the server sends no 1xx/3xx); its percentiles cover every
        # completed request, so they are those of the 2xx answers when non2xx is 0
        "latency_ms": latency,
        "raw": raw,
        "text": output,
    }


def run_loadgen(server: Server, path: str, phase: int, rate: float, seconds: float) -> dict[str, Any]:
    command = [
        sys.executable, str(BENCH / "loadgen.py"), "--url", server.url(path),
        "--rate", f"{rate:g}", "--duration", f"{seconds:g}", "--phase", str(phase),
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    raw = json.loads(output)
    return {
        "tool": "loadgen",
        "command": " ".join(command),
        "seconds": raw["send_seconds"],
        "ok": raw["ok"],
        "non2xx": sum(n for status, n in raw["statuses"].items() if not status.startswith("2")),
        "errors": sum(raw["errors"].values()),
        "ok_per_second": raw["ok_per_second"],
        "latency_ms": raw["latency_ms"],
        "raw": raw,
    }


def measured(server: Server, endpoint: str, load: str, run: Any, slack: int) -> dict[str, Any]:
    """Run one load phase and add what the server did meanwhile: CPU, committed rows, triage progress."""
    before, cpu_server, cpu_children, wall = (
        server.counts(),
        server.cpu_seconds(),
        children_cpu(),
        time.monotonic(),
    )
    result: dict[str, Any] = run()
    wall = time.monotonic() - wall
    cpu_server, cpu_children = server.cpu_seconds() - cpu_server, children_cpu() - cpu_children
    time.sleep(0.5)  # requests wrk abandoned at its deadline finish on the server
    after = server.counts()
    rows = after["deliveries"] - before["deliveries"]
    expected = result["ok"] if endpoint == WEBHOOK else 0
    result.update(
        endpoint=endpoint,
        load=load,
        rows_committed=rows,
        rows_check="ok" if 0 <= rows - expected <= slack else f"MISMATCH ({rows} rows, {expected} 2xx)",
        server_cpu_percent=round(100 * cpu_server / wall, 1),
        server_cpu_ms_per_ok=round(1000 * cpu_server / result["ok"], 3) if result["ok"] else None,
        loadgen_cpu_percent=round(100 * cpu_children / wall, 1),
        triaged=after.get("jobs_done", 0) - before.get("jobs_done", 0),
        backlog=after.get("jobs_pending", 0) + after.get("jobs_running", 0),
    )
    return result


# --- rounds -------------------------------------------------------------------------------------------------


def warm_up(server: Server, options: Options, body: Path) -> dict[str, Any]:
    """Both endpoints once (imports, caches, connections); then let the warm-up's triage finish."""
    run_wrk(server, NOOP, 1, options.warmup, options.connections, body)
    run_loadgen(server, WEBHOOK, 2, 50, options.warmup)
    drained = server.wait_for_queue(30.0) if server.triage else 0.0
    return {"queue_drained_in": None if drained is None else round(drained, 2)}


def round_on_fresh_server(
    scenario: Scenario, kind: str, index: int, options: Options, body: Path, clock: Clock
) -> dict[str, Any] | None:
    length = 2 * (options.duration if kind == "throughput" else options.rate_duration) + options.warmup * 2
    if clock.left() < length + 20:
        print(
            f"  skipped {scenario.name} {kind} round {index}: the run would pass its time bound", flush=True
        )
        return None
    with tempfile.TemporaryDirectory(prefix="aiops-bench-") as directory:
        server = Server(Path(directory), scenario)
        try:
            server.start()
            record: dict[str, Any] = {"scenario": scenario.name, "kind": kind, "round": index}
            record["warmup"] = warm_up(server, options, body)
            record["aiops_package"] = server.package
            phases = []
            for phase, endpoint in ((10, NOOP), (11, WEBHOOK)):
                if kind == "throughput":
                    load = f"wrk -c{options.connections}"

                    def run(endpoint: str = endpoint, phase: int = phase) -> dict[str, Any]:
                        return run_wrk(server, endpoint, phase, options.duration, options.connections, body)

                    phases.append(measured(server, endpoint, load, run, slack=options.connections))
                else:
                    load = f"{options.rate:g}/s open loop"

                    def run(endpoint: str = endpoint, phase: int = phase) -> dict[str, Any]:
                        return run_loadgen(server, endpoint, phase, options.rate, options.rate_duration)

                    phases.append(measured(server, endpoint, load, run, slack=0))
                print("  " + one_line(scenario.name, kind, index, phases[-1]), flush=True)
            record["phases"] = phases
            record["server_log_tail"] = server.stderr().splitlines()[-5:]
        finally:
            server.stop()
    return record


def one_line(scenario: str, kind: str, index: int, phase: dict[str, Any]) -> str:
    latency = phase["latency_ms"]
    return (
        f"{scenario} {kind} #{index} {phase['endpoint']}: {phase['ok_per_second']} 2xx/s, p50 {latency['p50']} ms,"
        f" p99 {latency['p99']} ms, non-2xx {phase['non2xx']}, errors {phase['errors']},"
        f" rows {phase['rows_check']}, server CPU {phase['server_cpu_percent']}%"
    )


# --- machine and report -------------------------------------------------------------------------------------


def host() -> dict[str, Any]:
    """The machine a bench ran on: CPUs, memory, kernel, Python, SQLite, and the load when the run began."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?"
    )
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    memory_kb = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal:")))
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        # Other work on the machine skews every figure: the 1-minute load average when the run began.
        "load_average": round(os.getloadavg()[0], 2),
    }


def machine(workdir: Path) -> dict[str, Any]:
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    versions = {}
    for package in (
        "starlette",
        "uvicorn",
        "h11",
        "httptools",
        "uvloop",
        "SQLAlchemy",
        "aiosqlite",
        "pydantic",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        **host(),
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0].split(" Copyright")[0].strip(),
        "packages": versions,
        "fsync_ms": fsync_probe(workdir),
        "git": git_revision(),
    }


def fsync_probe(directory: Path, count: int = 200) -> dict[str, float]:
    """Median and p99 of a 4 KiB write + fdatasync in the directory holding the databases (the WAL's cost)."""
    path = directory / "fsync-probe"
    times = []
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(count):
            os.write(descriptor, b"x" * 4096)
            started = time.perf_counter()
            os.fdatasync(descriptor)
            times.append(time.perf_counter() - started)
    finally:
        os.close(descriptor)
        path.unlink()
    times.sort()
    return {"p50": round(times[count // 2] * 1000, 3), "p99": round(times[int(count * 0.99)] * 1000, 3)}


def git_revision() -> str:
    """The commit the code is at, and whether the work tree differs (read-only git commands)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "?"
    return head.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")


def summary(records: list[dict[str, Any]], options: Options) -> dict[str, Any]:
    """Webhook/no-op throughput ratio per round (same server), and p99 at the fixed rate; against the targets."""
    verdicts: dict[str, Any] = {}
    for name in dict.fromkeys(record["scenario"] for record in records):
        ratios, p99s = [], []
        for record in records:
            if record["scenario"] != name:
                continue
            by_endpoint = {phase["endpoint"]: phase for phase in record["phases"]}
            if record["kind"] == "throughput":
                ratios.append(by_endpoint[WEBHOOK]["ok_per_second"] / by_endpoint[NOOP]["ok_per_second"])
            else:
                webhook = by_endpoint[WEBHOOK]
                clean = webhook["non2xx"] == 0 and webhook["errors"] == 0
                p99s.append(webhook["latency_ms"]["p99"] if clean else float("inf"))
        verdicts[name] = {
            "throughput_ratios": [round(ratio, 3) for ratio in ratios],
            "ratio_target_met": bool(ratios) and min(ratios) >= 0.5,
            f"webhook_p99_ms_at_{options.rate:g}": p99s,
            "p99_target_met": bool(p99s) and max(p99s) < 50.0,
        }
    return verdicts


def markdown(report: dict[str, Any]) -> str:
    info, options = report["machine"], report["options"]
    lines = [
        f"Run {report['started']} ({report['seconds']:.0f} s), code {info['git']}, aiops from {report['package']}",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, Linux {info['kernel']},"
        f" Python {info['python']}, SQLite {info['sqlite']}, {info['wrk']};"
        f" fdatasync of 4 KiB p50 {info['fsync_ms']['p50']} ms, p99 {info['fsync_ms']['p99']} ms;"
        f" load average {info['load_average']} at the start.",
        "Packages: " + ", ".join(f"{name} {version}" for name, version in info["packages"].items()) + ".",
        f"Load: wrk -t1 -c{options['connections']} -d{options['duration']:g}s; open loop"
        f" {options['rate']:g}/s for {options['rate_duration']:g}s; bodies of {report['body_bytes']} bytes"
        " (10 alerts, each request a new delivery).",
        "",
        "| scenario | round | endpoint | load | 2xx/s | non-2xx | errors | p50 ms | p90 ms | p99 ms | max ms"
        " | rows check | server CPU | server CPU ms/req | loadgen CPU | triaged | backlog |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for record in report["records"]:
        for phase in record["phases"]:
            latency = phase["latency_ms"]
            lines.append(
                f"| {record['scenario']} | {record['kind']} {record['round']} | {phase['endpoint']} | {phase['load']}"
                f" | {phase['ok_per_second']} | {phase['non2xx']} | {phase['errors']} | {latency['p50']}"
                f" | {latency['p90']} | {latency['p99']} | {latency['max']} | {phase['rows_check']}"
                f" | {phase['server_cpu_percent']}% | {phase['server_cpu_ms_per_ok']} | {phase['loadgen_cpu_percent']}%"
                f" | {phase['triaged']} | {phase['backlog']} |"
            )
    lines += [
        "",
        "| scenario | webhook/no-op throughput | target ≥ 0.5 | webhook p99 at fixed rate | target < 50 ms |",
    ]
    lines.append("|---|---|---|---|---|")
    for name, verdict in report["summary"].items():
        p99 = next(value for key, value in verdict.items() if key.startswith("webhook_p99"))
        lines.append(
            f"| {name} | {', '.join(f'{ratio:.2f}' for ratio in verdict['throughput_ratios']) or '-'}"
            f" | {'met' if verdict['ratio_target_met'] else 'NOT met'} | {', '.join(f'{v} ms' for v in p99) or '-'}"
            f" | {'met' if verdict['p99_target_met'] else 'NOT met'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenarios", default="production,workers1", help=f"comma-separated: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of each wrk phase")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s of the fixed-rate phases")
    parser.add_argument("--rate-duration", type=float, default=20.0, help="seconds of each fixed-rate phase")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of warm-up per endpoint and server"
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 3 s phases")
    args = parser.parse_args()
    scenarios = [SCENARIOS[name] for name in args.scenarios.split(",")]
    if args.quick:
        args.duration, args.rate_duration = 3.0, 3.0
    options = Options(args.duration, args.connections, args.rate, args.rate_duration, args.warmup)
    clock = Clock()
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    RESULTS.mkdir(exist_ok=True)
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aiops-bench-") as directory:
        workdir = Path(directory)
        info = machine(workdir)
        body = workdir / "body.json"
        body.write_text(payloads.template())
        print(
            f"aiops intake benchmark, {info['nproc']} CPUs {info['cpu_model']}, code {info['git']}",
            flush=True,
        )
        for scenario in scenarios:
            for kind, rounds in (("throughput", scenario.throughput_rounds), ("rate", scenario.rate_rounds)):
                for index in range(1, rounds + 1):
                    record = round_on_fresh_server(scenario, kind, index, options, body, clock)
                    if record is not None:
                        records.append(record)
    report = {
        "started": started,
        "seconds": round(time.monotonic() - clock.start, 1),
        "options": options.__dict__,
        "machine": info,
        "package": records[0]["aiops_package"] if records else "?",
        "body_bytes": len(payloads.render(payloads.template(), 0, 0, 1)),
        "records": records,
        "summary": summary(records, options),
    }
    save_results("intake", started, report, markdown(report))
    return 0


def save_results(kind: str, started: str, report: dict[str, Any], text: str) -> None:
    """bench/results/KIND-STAMP.json and .md, the Markdown printed too."""
    stamp = started.replace(":", "").replace("-", "")
    (RESULTS / f"{kind}-{stamp}.json").write_text(json.dumps(report, indent=2))
    (RESULTS / f"{kind}-{stamp}.md").write_text(text)
    print()
    print(text)
    print(f"results: {RESULTS.relative_to(ROOT)}/{kind}-{stamp}.json and .md")


if __name__ == "__main__":
    sys.exit(main())
