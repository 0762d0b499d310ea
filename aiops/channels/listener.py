"""The thread a chat platform's SDK connection runs in (DingTalk Stream, Feishu's long connection).

Both SDKs block, or insist on an event loop of their own, so each connection gets a thread with its own loop; card
clicks are handed from there to the service's loop. `start()` is called from the service's loop, `await stop()` on
shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from starlette.responses import Response

from aiops.channels.inbound import Received
from aiops.web.responses import error

log = logging.getLogger("aiops.channels")


class ListenerThread:
    """Subclasses give `_run`, the thread's body (it sets `_loop`, then `_started`), and `_interrupt`, called on that
    loop by `stop` to end it; `_stopping` is set from the moment `stop` begins."""

    def __init__(self, thread_name: str, join_within: float) -> None:
        self._thread_name = thread_name
        self._join_within = join_within
        self._service_loop: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopping = threading.Event()

    def start(self) -> None:
        """Connect in a thread of its own; clicks are handled on the loop this is called from."""
        self._service_loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._thread = None
        self._stopping.set()
        await asyncio.to_thread(self._started.wait, 5.0)
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # its loop has ended already
                self._loop.call_soon_threadsafe(self._interrupt)
        await asyncio.to_thread(thread.join, self._join_within)
        if thread.is_alive():
            log.warning("%s: the connection did not stop in time", self._thread_name)

    async def receive(self, request: Received) -> Response:
        """A connection of its own is all such a channel receives on: it has no HTTP route."""
        return error(404, f"{self._thread_name} receives nothing at {request.path}")

    def _run(self) -> None:
        raise NotImplementedError

    def _interrupt(self) -> None:
        raise NotImplementedError
