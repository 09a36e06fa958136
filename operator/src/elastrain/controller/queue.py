"""A deduplicating work queue of job keys, with the guarantees of client-go's workqueue.

* A key is queued at most once however many events arrive for it (a 16-pod job starting
  produces dozens of pod events but only a few reconciles).
* A key is never handed to two workers at once; a key added while being processed is marked
  dirty and queued again when its worker calls :meth:`done`, so no event is lost.
* :meth:`add_after` keeps only the earliest pending timer per key (``requeue_after``).
* :meth:`backoff` re-adds with per-key exponential delay until :meth:`forget`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """An asyncio work queue; all methods must be called from the loop's thread."""

    def __init__(
        self,
        *,
        base_delay: float = 0.5,
        max_delay: float = 300.0,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._on_depth = on_depth
        self._queue: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._failures: dict[K, int] = {}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def _depth_changed(self) -> None:
        if self._on_depth is not None:
            self._on_depth(len(self._queue))

    def add(self, key: K) -> None:
        """Queue ``key`` now (a no-op when already queued; deferred when being processed)."""
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        self._ready.set()
        self._depth_changed()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds, unless an earlier timer is already pending."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending.when() <= when:
                return
            pending.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def backoff(self, key: K) -> float:
        """Re-add ``key`` after an exponentially growing delay; returns that delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(self._max_delay, self._base_delay * 2.0 ** min(failures, 32))
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset ``key``'s back-off after a successful reconcile."""
        self._failures.pop(key, None)

    def discard(self, key: K) -> None:
        """Drop every trace of ``key`` (its job is gone): timers, back-off."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)

    async def get(self) -> K:
        """Wait for the next key and mark it as being processed."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        self._depth_changed()
        return key

    def done(self, key: K) -> None:
        """Mark ``key`` processed; re-queue it when events arrived meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def close(self) -> None:
        """Cancel every pending timer (on shutdown)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
