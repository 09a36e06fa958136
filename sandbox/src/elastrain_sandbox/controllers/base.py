"""The pattern every sandbox controller follows: a store listener that only enqueues, and a
task on the sandbox's event loop that does the work.

Listeners run under the store lock (possibly in another thread), so they hand each event to
the loop with ``call_soon_threadsafe`` and return; ``handle`` then runs with the lock free and
may read and write the store like any client. One failing event is logged and never stops the
controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from elastrain_sandbox.apiserver.store import Store, WatchEvent

log = logging.getLogger(__name__)


class Controller:
    """Subclasses set ``keys`` (resource keys they want) and implement ``handle``."""

    keys: frozenset[tuple[str, str]] = frozenset()

    def __init__(self, store: Store) -> None:
        self.store = store
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[WatchEvent] | None = None
        self._task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        """Attach to the store and start working on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self.store.add_listener(self._on_event)
        self._task = self._loop.create_task(self._run(), name=type(self).__name__)

    async def stop(self) -> None:
        self.store.remove_listener(self._on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_event(self, ev: WatchEvent) -> None:
        if ev.rt.key in self.keys and self._loop is not None and self._queue is not None:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                self._loop.call_soon_threadsafe(self._queue.put_nowait, ev)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            ev = await self._queue.get()
            try:
                await self.handle(ev)
            except Exception:
                log.exception(
                    "%s failed on %s %s",
                    type(self).__name__,
                    ev.type,
                    ev.obj["metadata"].get("name"),
                )

    async def handle(self, ev: WatchEvent) -> None:
        raise NotImplementedError
