"""A real SOCKS5 and HTTP proxy on loopback: pproxy (from PyPI) in a process of its own.

Started with `-v`, pproxy logs one line per connection it carries, `socks5 127.0.0.1:50212 -> 127.0.0.1:8080`, so
a test can tell which destinations went through it: `carried` lists their `host:port`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

from tests.support.binaries import free_port


class Pproxy:
    """`socks5://127.0.0.1:{socks_port}` and `http://127.0.0.1:{http_port}`, optionally with a username and
    password for SOCKS."""

    def __init__(self, workdir: Path, credentials: tuple[str, str] | None = None) -> None:
        self.socks_port = free_port()
        self.http_port = free_port()
        self._log = workdir / f"pproxy-{self.socks_port}.log"
        self._credentials = credentials
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def socks(self) -> str:
        """The SOCKS5 proxy's URL with its credentials, as a configuration writes it (socks5h: names resolved by
        the proxy)."""
        user = f"{self._credentials[0]}:{self._credentials[1]}@" if self._credentials else ""
        return f"socks5h://{user}127.0.0.1:{self.socks_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> Self:
        auth = f"#{self._credentials[0]}:{self._credentials[1]}" if self._credentials else ""
        listen = [
            "-l",
            f"socks5://127.0.0.1:{self.socks_port}{auth}",
            "-l",
            f"http://127.0.0.1:{self.http_port}",
        ]
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-u", "-m", "pproxy", *listen, "-v"], stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_for(self.socks_port)
        self._wait_for(self.http_port)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)

    def carried(self) -> list[str]:
        """`host:port` of every connection the proxy carried so far, in order."""
        lines = self._log.read_text(errors="replace").splitlines()
        return [line.rsplit(" -> ", 1)[1].strip() for line in lines if " -> " in line]

    def wait_for(self, target: str, timeout: float = 10.0) -> None:
        """Until the proxy has carried a connection to `target` (`host:port`); its log is written a little after."""
        deadline = time.monotonic() + timeout
        while target not in self.carried():
            if time.monotonic() > deadline:
                raise AssertionError(f"the proxy carried nothing to {target}: {self.carried()}")
            time.sleep(0.05)

    def _wait_for(self, port: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"pproxy exited: {self._log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pproxy did not listen on {port} within {timeout}s")
