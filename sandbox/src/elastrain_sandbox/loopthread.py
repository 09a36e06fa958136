"""A service on a private asyncio loop in a daemon thread, driven from ordinary threads.

Tests and the CLI are synchronous; the sandbox's servers, controllers and node agent are
asyncio. ``LoopThread`` runs ``start()``, then waits until ``stop()`` is asked for, then runs
``shutdown()``, all on its own loop; :meth:`call` runs any other coroutine there and returns
its result. A failing ``start()`` is shut down at once and re-raised (chained) to the caller of
:meth:`start`, so no half-started service is left behind.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """``start(timeout)`` returns once ``start_fn`` has finished; ``stop(timeout)`` joins."""

    def __init__(
        self,
        name: str,
        start_fn: Callable[[], Awaitable[None]],
        shutdown_fn: Callable[[], Awaitable[None]],
    ) -> None:
        self.name = name
        self._start_fn = start_fn
        self._shutdown_fn = shutdown_fn
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, timeout: float) -> None:
        """Start the thread and wait for ``start_fn``; raises if it failed or took too long."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"{self.name} did not start in {timeout:.0f}s")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"{self.name} failed to start") from self._error

    def stop(self, timeout: float) -> None:
        """Ask for ``shutdown_fn`` and wait for the thread (no-op when not running)."""
        if self._thread is None:
            return
        loop, ev = self.loop, self._stop_event
        if loop is not None and ev is not None and not loop.is_closed():
            loop.call_soon_threadsafe(ev.set)
        self._thread.join(timeout=timeout)
        self._thread = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and return its result."""
        if self.loop is None:
            coro.close()
            raise RuntimeError(f"{self.name} is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        try:
            await self._start_fn()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            await self._shutdown_fn()
            return
        self._started.set()
        await self._stop_event.wait()
        await self._shutdown_fn()
