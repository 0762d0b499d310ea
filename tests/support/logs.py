"""aiops' own logging (`aiops.logs.configure`: one stderr handler that redacts the configured secrets) for the length
of a test, with the root logger given back as it was."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from aiops.logs import configure


@contextmanager
def aiops_logging(secrets: Iterable[str]) -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure(secrets)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
