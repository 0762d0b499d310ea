"""Finding the real programs the suite drives. In CI a missing one fails the test; locally it is skipped loudly."""

from __future__ import annotations

import glob
import os
import shutil
import socket

import pytest


def require(name: str) -> str:
    """Path of the binary `name` (PostgreSQL's live under /usr/lib/postgresql/N/bin, sshd's in /usr/sbin,
    which is not on a non-root user's PATH)."""
    found = (
        shutil.which(name)
        or shutil.which(name, path="/usr/sbin:/sbin")
        or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    )
    if found:
        return found
    message = (
        f"MISSING BINARY: {name} is not installed; `make test` installs it (scripts/install-debian-deps)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
