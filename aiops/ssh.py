"""Running one catalog command on one inventory host over SSH (asyncssh), and nothing else.

The guarantees, in the order they apply:

- **Who we talk to**: the host's key must already be in its `known_hosts` file. An unknown or changed key
  refuses the connection (`HostKeyRefused`); there is no trust-on-first-use and no fallback.
- **How we log in**: the host's `key_file` only. No SSH agent, no password, no keyboard-interactive, and no
  `~/.ssh/config`, so nothing on the aiops machine outside the configuration changes what is used.
- **What runs**: the argv, each item quoted with `shlex.quote` for the remote POSIX login shell, so no value is
  ever interpreted by a shell — not `$(…)`, not `;`, not a backtick, a quote or a newline.
- **How long**: `connect_timeout` to connect and log in, then `timeout` for the command. A command still running
  at its deadline, or whose output passes its cap, is stopped — its whole process group killed — and its
  result says so (`timed_out`, `truncated`) with the output read until then: partial output of a slow command is
  evidence too, so a deadline is a result, not an exception.
- **How much**: stdout and stderr are read as they arrive and at most `output_cap` bytes of each are kept.

Errors are `ExecutionError`s whose `retryable` says whether trying again later could help.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncssh

from aiops.i18n import message
from aiops.inventory import Host, HostNotFound, Inventory
from aiops.models import Message

_CHUNK = 64 * 1024
_Process = asyncssh.SSHClientProcess[bytes]
# The command line the remote login shell gets: `sh -c WATCHDOG aiops ARGV…`. The watchdog holds the channel's
# stdin, which aiops never writes nor closes; when the channel closes — a deadline, the output cap, aiops gone —
# sshd closes that stdin and the watchdog kills the process group sshd made for the session. The SSH `signal`
# request would be simpler, but OpenSSH refuses it for sessions of root. The argv reaches the command as "$@",
# never as shell text.
_WATCHDOG = (
    'exec 3<&0; { cat <&3 >/dev/null 2>&1; kill -s KILL 0; } >/dev/null 2>&1 & exec 3<&-; "$@" </dev/null'
)


@dataclass(frozen=True)
class CommandResult:
    """What a command did: its exit status (None when it was stopped or died by a signal) and its output.

    `stdout` and `stderr` are decoded as UTF-8 with undecodable bytes replaced; `truncated` says a stream passed
    `output_cap` (the command was then stopped), `timed_out` that it was stopped at its deadline."""

    host: str
    argv: tuple[str, ...]
    exit_status: int | None
    stdout: str
    stderr: str
    truncated: bool
    duration: float
    timed_out: bool = False
    exit_signal: str | None = None


class Executor(Protocol):
    """Runs an argv on a host of the inventory. Raises `ExecutionError`; a command's own failure is a result."""

    # The deadline is a parameter, not the caller's asyncio.timeout, because a command stopped at its deadline
    # is a result with its partial output, not a cancellation.
    async def run(
        self,
        host: str,
        argv: Sequence[str],
        *,
        timeout: float,  # noqa: ASYNC109
        output_cap: int,
    ) -> CommandResult: ...


class ExecutionError(Exception):
    """A command that could not be run; `retryable` says whether trying again later could help."""

    retryable = False


class UnknownHost(ExecutionError):
    """The host is not in the inventory."""


class KeyFileError(ExecutionError):
    """The host's `key_file` cannot be read or is not a usable private key."""


class HostKeyRefused(ExecutionError):
    """The host presented a key its `known_hosts` file does not hold: unknown, changed, or the file is unreadable."""


class AuthenticationFailed(ExecutionError):
    """The host did not accept the key."""


class ConnectionFailed(ExecutionError):
    """The host could not be reached or dropped the connection: refused, unreachable, reset, timed out."""

    retryable = True


class SshExecutor:
    """`Executor` over asyncssh, one connection per call.

    A connection per command costs one handshake (milliseconds on a LAN), and evidence runs a handful of
    commands per incident. In exchange there is no pool to go stale: a restarted host, a rotated key or an
    edited known_hosts file counts from the next call, and one host's trouble never outlives its call."""

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory

    async def run(
        self,
        host: str,
        argv: Sequence[str],
        *,
        timeout: float,  # noqa: ASYNC109 - see Executor.run
        output_cap: int,
    ) -> CommandResult:
        """Run `argv` on `host` (an inventory name or target value) under `timeout` seconds."""
        if not argv:
            raise ValueError("argv is empty")
        name, entry = self._resolve(host)
        started = time.monotonic()
        stdout, stderr = _Capture(output_cap), _Capture(output_cap)
        async with await _connect(name, entry) as conn:
            deadline = asyncio.get_running_loop().time() + timeout  # the command's own time, after connecting
            process = await _start(conn, name, argv, deadline)
            timed_out = not await _read(process, stdout, stderr, deadline)
        signal = process.exit_signal[0] if process.exit_signal else None
        stopped = timed_out or stdout.truncated or stderr.truncated or signal is not None
        return CommandResult(
            host=name,
            argv=tuple(argv),
            exit_status=None if stopped else process.exit_status,
            stdout=stdout.text(),
            stderr=stderr.text(),
            truncated=stdout.truncated or stderr.truncated,
            duration=time.monotonic() - started,
            timed_out=timed_out,
            exit_signal=signal,
        )

    def _resolve(self, host: str) -> tuple[str, Host]:
        try:
            return self._inventory.resolve(host)
        except HostNotFound as error:
            raise UnknownHost(str(error)) from None


_SAID: tuple[tuple[type[ExecutionError], str], ...] = (
    (UnknownHost, "ssh_unknown_host"),
    (KeyFileError, "ssh_key_file"),
    (HostKeyRefused, "ssh_host_key"),
    (AuthenticationFailed, "ssh_authentication"),
    (ConnectionFailed, "ssh_connection"),
)


def said(error: ExecutionError) -> Message:
    """What went wrong, for a reader; the error's own words, which name the host, the file and the fix, are the
    detail."""
    key = next((key for kind, key in _SAID if isinstance(error, kind)), "ssh_failed")
    return message(key, detail=error)


def command_line(argv: Sequence[str]) -> str:
    """The argv as one POSIX shell command line, every item quoted: how a command is shown and sent."""
    return " ".join(shlex.quote(item) for item in argv)


def _where(name: str, host: Host) -> str:
    return f"host {name} ({host.user}@{host.address}:{host.port})"


async def _connect(name: str, host: Host) -> asyncssh.SSHClientConnection:
    key, known_hosts = _private_key(name, host), _known_hosts(name, host)
    try:
        return await asyncssh.connect(
            host.address,
            host.port,
            username=host.user,
            client_keys=[key],
            known_hosts=known_hosts,
            agent_path=None,
            password=None,
            preferred_auth="publickey",
            config=None,  # never ~/.ssh/config: only the inventory decides
            connect_timeout=host.connect_timeout,
        )
    except asyncssh.HostKeyNotVerifiable:
        raise HostKeyRefused(
            f"{_where(name, host)}: the host key it presented is not in {host.known_hosts} (unknown or "
            "changed); the connection was refused. Check the key's fingerprint and add it to that file"
        ) from None
    except asyncssh.PermissionDenied:
        raise AuthenticationFailed(
            f"{_where(name, host)}: the key {host.key_file} was not accepted; add its public key to "
            f"~{host.user}/.ssh/authorized_keys there"
        ) from None
    except (TimeoutError, OSError, asyncssh.Error) as error:
        raise ConnectionFailed(f"{_where(name, host)}: cannot connect: {_reason(error, host)}") from None


def _reason(error: BaseException, host: Host) -> str:
    if isinstance(error, TimeoutError):
        return f"no SSH session within {host.connect_timeout:g}s (connect_timeout)"
    if isinstance(error, asyncssh.Error):
        return error.reason
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno)  # asyncio's own text is "Connect call failed ('10.0.0.1', 22)"
    return str(error) or type(error).__name__


def _private_key(name: str, host: Host) -> asyncssh.SSHKey:
    # Read here rather than by asyncssh, so a missing or locked key says so instead of passing for a network error.
    try:
        return asyncssh.read_private_key(str(host.key_file))
    except (OSError, asyncssh.KeyImportError) as error:
        raise KeyFileError(
            f"{_where(name, host)}: key_file {host.key_file} cannot be used: {_key_reason(error)}"
        ) from None


def _key_reason(error: Exception) -> str:
    if isinstance(error, OSError):
        return _file_reason(error)
    return f"{error} (it must be an unencrypted private key)"


def _file_reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


def _known_hosts(name: str, host: Host) -> asyncssh.SSHKnownHosts:
    try:
        return asyncssh.read_known_hosts(str(host.known_hosts))
    except (OSError, ValueError) as error:
        raise HostKeyRefused(
            f"{_where(name, host)}: known_hosts {host.known_hosts} cannot be used ({_file_reason(error)}); "
            "without it no host key can be trusted"
        ) from None


async def _start(
    conn: asyncssh.SSHClientConnection, name: str, argv: Sequence[str], deadline: float
) -> _Process:
    line = command_line(["sh", "-c", _WATCHDOG, "aiops", *argv])
    try:
        async with asyncio.timeout_at(deadline):
            return await conn.create_process(line, encoding=None)
    except TimeoutError:
        raise ConnectionFailed(f"host {name}: no session opened before the command's deadline") from None
    except (OSError, asyncssh.Error) as error:
        raise ConnectionFailed(f"host {name}: cannot start a command: {error}") from None


class _Capture:
    """At most `cap` bytes of one output stream; `truncated` once more arrived."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> bool:
        """Keep what fits; False once the cap is passed."""
        room = self._cap - len(self._data)
        self._data += chunk[:room]
        self.truncated = self.truncated or len(chunk) > room
        return not self.truncated

    def text(self) -> str:
        return self._data.decode("utf-8", errors="replace")


async def _read(process: _Process, stdout: _Capture, stderr: _Capture, deadline: float) -> bool:
    """Read both streams until the command ends (True) or the loop-time `deadline` passes (False, stopped)."""
    try:
        async with asyncio.timeout_at(deadline):
            await asyncio.gather(
                _pump(process, process.stdout, stdout), _pump(process, process.stderr, stderr)
            )
            await process.wait_closed()
    except TimeoutError:
        _stop(process)
        return False
    return True


async def _pump(process: _Process, stream: asyncssh.SSHReader[bytes], capture: _Capture) -> None:
    try:
        while chunk := await stream.read(_CHUNK):
            if not capture.add(chunk):
                _stop(process)  # the rest would be discarded: stop producing it, as `| head -c` would
                return
    except (OSError, asyncssh.Error):
        return  # the channel closed under us: what was read is the result


def _stop(process: _Process) -> None:
    # Closing the channel is what stops the command (see _WATCHDOG); the signal, where sshd honours it, is quicker.
    with contextlib.suppress(OSError, asyncssh.Error):
        process.kill()
    process.close()
