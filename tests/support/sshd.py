"""A private OpenSSH server on loopback: Debian's real sshd with a throwaway host key and client key.

It runs as the current user (root or not): without PAM or strict modes, sshd needs no system files beyond its
privilege-separation directory, and a non-root sshd can only log in as its own user — which is all we need.
"""

from __future__ import annotations

import os
import pwd
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiops.inventory import Host
from tests.support.binaries import free_port, require

_STARTUP = 10.0
# OpenSSH 9.8 penalises a source address after refused logins; the tests refuse host keys on purpose.
_PENALTIES_SINCE = (9, 8)


class SshServer:
    """sshd on 127.0.0.1:`port`, accepting `client_key` for the current user; `known_hosts` holds its key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.client_key = root / "client_ed25519"
        self.known_hosts = root / "known_hosts"
        self.log = root / "sshd.log"
        self._host_key = root / "host_ed25519"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> SshServer:
        sshd = require("sshd")
        _keygen(self._host_key)
        _keygen(self.client_key)
        (self.root / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        self.known_hosts.write_text(self.known_hosts_line(self._host_key.with_suffix(".pub")))
        config = self.root / "sshd_config"
        config.write_text(self._config(sshd))
        _privilege_separation_directory()
        with self.log.open("wb") as log:
            # -D: stay in the foreground, -e: log to stderr; sshd insists on being started by absolute path.
            self._process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=log)
        self._wait_until_listening()
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def host(self, **overrides: Any) -> Host:
        """This server as an inventory entry."""
        fields: dict[str, Any] = {
            "address": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "key_file": self.client_key,
            "known_hosts": self.known_hosts,
            "connect_timeout": 5,
        }
        return Host.model_validate({**fields, **overrides})

    def known_hosts_line(self, public_key: Path) -> str:
        """A known_hosts line claiming `public_key` for this server's `[127.0.0.1]:port`."""
        kind, key = public_key.read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}\n"

    def other_key(self) -> Path:
        """The public half of a fresh key that is not this server's."""
        path = self.root / f"other_{time.monotonic_ns()}"
        _keygen(path)
        return path.with_suffix(".pub")

    def _config(self, sshd: str) -> str:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self._host_key}",
            f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            "UsePAM no",
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "LogLevel VERBOSE",
        ]
        if _version(sshd) >= _PENALTIES_SINCE:
            lines.append("PerSourcePenalties no")
        return "\n".join(lines) + "\n"

    def _wait_until_listening(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + _STARTUP
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"sshd exited with {self._process.returncode}:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"sshd did not listen on port {self.port} within {_STARTUP:g}s:\n{self.log.read_text()}"
        )


@contextmanager
def running_sshd(root: Path) -> Iterator[SshServer]:
    """An `SshServer` in `root`, stopped afterwards."""
    server = SshServer(root).start()
    try:
        yield server
    finally:
        server.stop()


def _keygen(path: Path) -> None:
    subprocess.run(
        [require("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "aiops-test", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def _privilege_separation_directory() -> None:
    # Debian's sshd refuses to start without it; /run is a tmpfs, so a fresh container lacks it.
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


def _version(sshd: str) -> tuple[int, int]:
    # `sshd -V` (OpenSSH ≥ 9.0) prints e.g. "OpenSSH_9.2p1 Debian-2, OpenSSL 3.0.11"; older ones print usage.
    done = subprocess.run([sshd, "-V"], capture_output=True, text=True, timeout=10, check=False)
    found = re.search(r"OpenSSH_(\d+)\.(\d+)", done.stdout + done.stderr)
    return (int(found[1]), int(found[2])) if found else (0, 0)
