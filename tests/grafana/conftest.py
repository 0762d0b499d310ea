"""A fake Grafana on loopback for the Grafana tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.grafana import FakeGrafana


@pytest.fixture
def fake_grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana().start()
    try:
        yield fake
    finally:
        fake.stop()
