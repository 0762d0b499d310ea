"""`aiops serve` as a real subprocess, the way Alertmanager and an operator see it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import yaml

from tests.support.binaries import free_port

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class AiopsProcess:
    """Writes a config file, starts `aiops serve`, and keeps its output in files for assertions."""

    def __init__(self, workdir: Path, config: dict[str, object], env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        server = dict(config.get("server", {}))  # type: ignore[call-overload]
        server.setdefault("listen", f"127.0.0.1:{self.port}")
        self.config = {**config, "server": server}
        self.config_path = workdir / "aiops.yml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 30.0) -> None:
        self.starts += 1
        stdout = open(self.workdir / f"stdout.{self.starts}.log", "wb")  # noqa: SIM115 - closed with the process
        stderr = open(self.workdir / f"stderr.{self.starts}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aiops", "--config", str(self.config_path), "serve"],
            cwd=self.workdir,
            env=self.env,
            stdout=stdout,
            stderr=stderr,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"aiops serve exited with {self.process.returncode}:\n{self.stderr()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"aiops serve did not become healthy in {timeout}s:\n{self.stderr()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run, as in a crash or an OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stdout(self) -> str:
        return "".join(
            (self.workdir / f"stdout.{n}.log").read_text(errors="replace") for n in range(1, self.starts + 1)
        )

    def stderr(self) -> str:
        return "".join(
            (self.workdir / f"stderr.{n}.log").read_text(errors="replace") for n in range(1, self.starts + 1)
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def wait_until(aiops: AiopsProcess, what: str, check: Callable[[], T | None], timeout: float) -> T:
    """Poll `check` until it returns something truthy; on time-out, fail with `what` and the process's stderr."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g}s: {what}\n--- aiops stderr ---\n{aiops.stderr()[-4000:]}")
        time.sleep(0.1)
