"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.e2e import Stack, stack_starter


@pytest.fixture
def start_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """`start_stack(token, **sections)` → a started exporter, aiops, Alertmanager and Prometheus; stopped after."""
    yield from stack_starter(tmp_path)
