"""The catalog as it is on disk now: read again when `actions.yml` changes, like the runbooks beside it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from aiops.actions.catalog import Action, Catalog, CatalogError, load_catalog

log = logging.getLogger("aiops.actions")


class LiveCatalog:
    """`current()` is the catalog of the file's latest readable version. A broken edit allows nothing until it is
    fixed (`aiops check` says what is wrong): running yesterday's reviewed actions after today's edit would be a
    surprise, allowing nothing is not."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._catalog = Catalog.empty()

    def get(self, action_id: str) -> Action | None:
        return self.current().get(action_id)

    def current(self) -> Catalog:
        with self._lock:
            stamp = self._read_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                self._catalog = self._load(stamp)
            return self._catalog

    def _read_stamp(self) -> tuple[float, int] | None:
        try:
            status = self.path.stat()
        except OSError:
            return None
        return status.st_mtime, status.st_size

    def _load(self, stamp: tuple[float, int] | None) -> Catalog:
        if stamp is None:
            return Catalog.empty()
        try:
            return load_catalog(self.path)
        except CatalogError as error:
            log.error("the action catalog %s is not valid, so no action is allowed: %s", self.path, error)
            return Catalog.empty()
