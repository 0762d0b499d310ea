"""The SSH executor against a real sshd: verbatim argv, strict host keys, output caps, deadlines that kill."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiops.inventory import Inventory
from aiops.ssh import (
    AuthenticationFailed,
    ConnectionFailed,
    HostKeyRefused,
    KeyFileError,
    SshExecutor,
    UnknownHost,
    command_line,
)
from tests.support.binaries import free_port
from tests.support.sshd import SshServer, running_sshd

CAP = 64 * 1024


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def executor(sshd: SshServer, **overrides: object) -> SshExecutor:
    return SshExecutor(Inventory({"local": sshd.host(**overrides)}))


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if entry.name.isdigit() and text in argv and int(entry.name) != os.getpid():
            found.append(argv)
    return found


async def test_runs_a_command(sshd: SshServer) -> None:
    result = await executor(sshd).run("local", ["printf", "%s-%s", "a", "b"], timeout=10, output_cap=CAP)
    assert (result.host, result.argv, result.exit_status, result.stdout, result.stderr) == (
        "local",
        ("printf", "%s-%s", "a", "b"),
        0,
        "a-b",
        "",
    )
    assert not result.truncated and not result.timed_out and result.duration > 0


async def test_shell_metacharacters_reach_the_command_verbatim(sshd: SshServer, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    values = [
        f"$(touch {marker})",
        f"; touch {marker}",
        f"`touch {marker}`",
        f"&& touch {marker} ||",
        f"| touch {marker}",
        f"> {marker}",
        f"x'; touch {marker}; echo '",
        f'x"; touch {marker}; echo "',
        f"line\ntouch {marker}",
        "$HOME ${PATH} ~ * ? [a] \\ \\n %s",
        "",
        "-n",
    ]
    result = await executor(sshd).run("local", ["printf", "%s\\0", *values], timeout=10, output_cap=CAP)
    assert result.stdout.split("\0")[:-1] == values
    assert result.exit_status == 0 and not marker.exists()


def test_command_line_quotes_every_item() -> None:
    assert command_line(["echo", "a b", "$(x)", "it's"]) == "echo 'a b' '$(x)' 'it'\"'\"'s'"


@pytest.mark.parametrize("known", ["empty", "other key"])
async def test_unknown_or_changed_host_key_is_refused(sshd: SshServer, tmp_path: Path, known: str) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("" if known == "empty" else sshd.known_hosts_line(sshd.other_key()))
    marker = tmp_path / "ran"
    with pytest.raises(HostKeyRefused) as raised:
        await executor(sshd, known_hosts=known_hosts).run(
            "local", ["touch", str(marker)], timeout=10, output_cap=CAP
        )
    assert not raised.value.retryable
    assert "host local (" in str(raised.value) and f"is not in {known_hosts}" in str(raised.value)
    assert not marker.exists()


async def test_unreadable_known_hosts_refuses(sshd: SshServer, tmp_path: Path) -> None:
    with pytest.raises(HostKeyRefused, match="No such file or directory") as raised:
        await executor(sshd, known_hosts=tmp_path / "absent").run(
            "local", ["true"], timeout=10, output_cap=CAP
        )
    assert not raised.value.retryable


async def test_a_key_the_host_does_not_accept(sshd: SshServer) -> None:
    stranger = sshd.other_key().with_suffix("")
    with pytest.raises(AuthenticationFailed, match=f"the key {stranger} was not accepted") as raised:
        await executor(sshd, key_file=stranger).run("local", ["true"], timeout=10, output_cap=CAP)
    assert not raised.value.retryable


async def test_a_missing_key_file(sshd: SshServer, tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="No such file or directory") as raised:
        await executor(sshd, key_file=tmp_path / "absent").run("local", ["true"], timeout=10, output_cap=CAP)
    assert not raised.value.retryable


async def test_output_is_capped_and_the_command_stopped(sshd: SshServer) -> None:
    flood = "head -c 20000000 /dev/zero | tr '\\0' x; echo done"
    started = time.monotonic()
    result = await executor(sshd).run("local", ["sh", "-c", flood], timeout=30, output_cap=1000)
    assert result.truncated and result.stdout == "x" * 1000
    assert result.exit_status is None and not result.timed_out
    assert time.monotonic() - started < 10


async def test_stderr_is_capped_too(sshd: SshServer) -> None:
    flood = "echo fine; head -c 3000000 /dev/zero | tr '\\0' e >&2"
    result = await executor(sshd).run("local", ["sh", "-c", flood], timeout=30, output_cap=500)
    assert result.truncated and result.stdout == "fine\n" and result.stderr == "e" * 500


async def test_a_deadline_kills_the_remote_command(sshd: SshServer, tmp_path: Path) -> None:
    marker = tmp_path / "finished"
    script = f"echo started; sleep 3; touch {marker}"
    started = time.monotonic()
    result = await executor(sshd).run("local", ["sh", "-c", script], timeout=1, output_cap=CAP)
    assert result.timed_out and result.exit_status is None and result.stdout == "started\n"
    assert 1 <= time.monotonic() - started < 5
    for _ in range(50):  # the watchdog reacts once sshd has seen the channel close
        if not processes_mentioning(str(marker)):
            break
        await asyncio.sleep(0.1)
    assert processes_mentioning(str(marker)) == [], "the remote shell and its sleep are gone"
    await asyncio.sleep(max(0.0, started + 3.5 - time.monotonic()))
    assert not marker.exists()


async def test_exit_status_and_stderr(sshd: SshServer) -> None:
    script = "echo out; echo err >&2; printf '\\377'; exit 3"
    result = await executor(sshd).run("local", ["sh", "-c", script], timeout=10, output_cap=CAP)
    assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n\ufffd", "err\n")


async def test_a_closed_port_is_retryable(sshd: SshServer) -> None:
    with pytest.raises(ConnectionFailed, match="Connection refused") as raised:
        await executor(sshd, port=free_port()).run("local", ["true"], timeout=10, output_cap=CAP)
    assert raised.value.retryable


async def test_a_silent_server_times_out_retryably(sshd: SshServer) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with pytest.raises(ConnectionFailed, match=r"no SSH session within 0\.5s") as raised:
            await executor(sshd, port=port, connect_timeout=0.5).run(
                "local", ["true"], timeout=10, output_cap=CAP
            )
    assert raised.value.retryable


async def test_unknown_host(sshd: SshServer) -> None:
    with pytest.raises(UnknownHost, match="add it under `hosts:`") as raised:
        await executor(sshd).run("elsewhere", ["true"], timeout=10, output_cap=CAP)
    assert not raised.value.retryable


async def test_target_values_resolve_like_the_inventory(sshd: SshServer) -> None:
    result = await executor(sshd).run("local:9100", ["true"], timeout=10, output_cap=CAP)
    assert result.host == "local" and result.exit_status == 0
