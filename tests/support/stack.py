"""Real Prometheus and Alertmanager processes for end-to-end tests, a tiny exporter for them to scrape, and
polling helpers that put every process's log into the failure message.

Everything lives under a directory the caller owns (pytest's `tmp_path`); every process is stopped by `stop()`.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.binaries import free_port, require

T = TypeVar("T")
LOG_TAIL = 6000  # characters of each log shown in a failure message

# A direct client: loopback traffic must never go through a proxy named in the environment.
_http = httpx.Client(trust_env=False, timeout=5.0)


def http() -> httpx.Client:
    return _http


class Exporter:
    """Serves one gauge at `/metrics`; set `value` to change what the next scrape sees."""

    def __init__(self, name: str, value: float = 1.0) -> None:
        self.name = name
        self.value = value
        self.scrapes = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="exporter", daemon=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Exporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                exporter.scrapes += 1
                body = f"# TYPE {exporter.name} gauge\n{exporter.name} {exporter.value:g}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        return Handler


class ManagedProcess:
    """A program started with its output in `<workdir>/<name>.log`, ready when `ready_url` answers 200."""

    def __init__(
        self, name: str, argv: list[str], workdir: Path, ready_url: str, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.ready_url = ready_url
        self.env = env  # the whole environment of the program; the test's own when None
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    def start(self, timeout: float = 30.0) -> ManagedProcess:
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if _http.get(self.ready_url, timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} was not ready at {self.ready_url} within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log(self, tail: int = LOG_TAIL) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text if len(text) <= tail else "…" + text[-tail:]


def prometheus(
    workdir: Path, *, port: int, scrape: str, alertmanager: str, rules: list[dict[str, Any]]
) -> ManagedProcess:
    """Prometheus scraping `scrape` and evaluating `rules` every second, alerting `alertmanager`."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "e2e", "rules": rules}]}))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(workdir / "rules.yml")],
        "scrape_configs": [{"job_name": "exporter", "static_configs": [{"targets": [scrape]}]}],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    argv = [
        require("prometheus"),
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return ManagedProcess("prometheus", argv, workdir, f"http://127.0.0.1:{port}/-/ready")


def node_exporter(workdir: Path, *, port: int, textfile: Path) -> ManagedProcess:
    """node_exporter with only its textfile collector: it exports what the `*.prom` files in `textfile` say."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        require("prometheus-node-exporter"),
        "--collector.disable-defaults",
        "--collector.textfile",
        f"--collector.textfile.directory={textfile}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return ManagedProcess("node_exporter", argv, workdir, f"http://127.0.0.1:{port}/metrics")


def alertmanager(
    workdir: Path, *, port: int, route: dict[str, Any], receivers: list[dict[str, Any]]
) -> ManagedProcess:
    """Alertmanager without clustering, with the given route tree and receivers."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump({"route": route, "receivers": receivers}))
    argv = [
        require("prometheus-alertmanager"),
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=debug",
    ]
    return ManagedProcess("alertmanager", argv, workdir, f"http://127.0.0.1:{port}/-/ready")


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`, in a text exposition; 0 when none."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def eventually(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    logs: Callable[[], str],
    interval: float = 0.25,
) -> T:
    """Call `check` until it returns something truthy; on the deadline fail naming `what`, the last answer or
    error, and the logs."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
        except (AssertionError, httpx.HTTPError, KeyError, IndexError, ValueError) as error:
            last = f"{type(error).__name__}: {error}"
        else:
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}\n{logs()}")
        time.sleep(interval)


def report(sections: Iterable[tuple[str, str]]) -> str:
    return "\n".join(f"----- {title} -----\n{body.rstrip()}" for title, body in sections)


__all__ = [
    "Exporter",
    "ManagedProcess",
    "alertmanager",
    "eventually",
    "free_port",
    "http",
    "metric",
    "node_exporter",
    "prometheus",
    "report",
]
