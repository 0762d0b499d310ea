"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.minimax import FakeMiniMax
from tests.support.chat import chatting_model
from tests.support.e2e import Stack, stack_starter
from tests.support.sshd import SshServer, running_sshd


@pytest.fixture
def start_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """`start_stack(token, **sections)` → a started exporter, aiops, Alertmanager and Prometheus; stopped after."""
    yield from stack_starter(tmp_path)


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    """A real sshd on loopback with throwaway keys, standing in for the alert's host."""
    (tmp_path / "sshd").mkdir()
    with running_sshd(tmp_path / "sshd") as server:
        yield server


@pytest.fixture
def model() -> Iterator[FakeMiniMax]:
    """A fake MiniMax that diagnoses, and answers chat questions after querying the stack's Prometheus."""
    fake = chatting_model()
    try:
        yield fake
    finally:
        fake.stop()
