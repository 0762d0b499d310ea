"""A private PostgreSQL server for the test session: its own data directory, loopback port and socket."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.binaries import free_port, require


class PostgresServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="aiops-pg-"))
        self.port = free_port()
        self._user = "postgres" if os.geteuid() == 0 else None
        self._databases = 0

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        command = list(argv)
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        initdb, pg_ctl = require("initdb"), require("pg_ctl")
        if self._user:
            uid = pwd.getpwnam(self._user)
            os.chown(self.root, uid.pw_uid, uid.pw_gid)
        self._run(initdb, "-D", str(self.root / "data"), "-U", "aiops", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            pg_ctl, "-D", str(self.root / "data"), "-o", options, "-l", str(self.root / "log"), "-w", "start"
        )

    def stop(self) -> None:
        pg_ctl = require("pg_ctl")
        try:
            self._run(pg_ctl, "-D", str(self.root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self) -> str:
        """A fresh, empty database; returns its `postgresql://` URL."""
        self._databases += 1
        name = f"aiops_{os.getpid()}_{self._databases}_{int(time.time() * 1000) % 100000}"
        self._run(
            require("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "aiops",
            "-d",
            "postgres",
            "-c",
            f'CREATE DATABASE "{name}"',
        )
        return f"postgresql://aiops@127.0.0.1:{self.port}/{name}"
