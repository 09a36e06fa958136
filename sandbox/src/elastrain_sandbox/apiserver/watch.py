"""Watch plumbing shared by the store and the HTTP layer.

A ``_Watcher`` is one registered watch: its filter (namespace, label and field selectors) and
the asyncio queue of the loop it is iterated on. The store hands it committed events with
``call_soon_threadsafe`` (so writers in any thread are safe); ``Watch`` is the async iterator
handed to callers. Events whose object moves into or out of a watcher's selection are
translated to ADDED/DELETED, as the API server's watch cache does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from elastrain_sandbox.apiserver.resources import ResourceType
from elastrain_sandbox.apiserver.selectors import FieldSelector, LabelSelector


@dataclass(frozen=True)
class WatchEvent:
    """One committed change. ``old`` is the previous state (None for ADDED)."""

    type: str  # ADDED, MODIFIED, DELETED
    rt: ResourceType
    obj: dict[str, Any]
    old: dict[str, Any] | None
    rv: int


@dataclass(eq=False)  # identity-hashed: watchers live in sets
class _Watcher:
    rt: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)

    def selects(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        md = obj["metadata"]
        if self.namespace is not None and md.get("namespace") != self.namespace:
            return False
        return self.labels.matches(md.get("labels")) and self.fields.matches(obj)

    def translate(self, ev: WatchEvent) -> WatchEvent | None:
        """The event this watcher sees: objects moving in/out of its selection are
        ADDED/DELETED, as the API server's watch cache does."""
        new_in = ev.type != "DELETED" and self.selects(ev.obj)
        old_in = self.selects(ev.old) if ev.type != "DELETED" else self.selects(ev.obj)
        if ev.type == "DELETED":
            return ev if old_in else None
        if new_in and old_in:
            return ev
        if new_in:
            return WatchEvent("ADDED", ev.rt, ev.obj, None, ev.rv)
        if old_in:
            return WatchEvent("DELETED", ev.rt, ev.obj, ev.old, ev.rv)
        return None

    def push(self, ev: WatchEvent | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the watch is over
            self.loop.call_soon_threadsafe(self.queue.put_nowait, ev)


class WatchSource(Protocol):
    """What a ``Watch`` needs from the store that feeds it (the store implements it).

    A protocol rather than the ``Store`` type, so that this module never imports the store,
    which imports it.
    """

    def _bookmark(self, watcher: _Watcher, initial_events_end: bool) -> None: ...

    def _unwatch(self, watcher: _Watcher) -> None: ...


class Watch:
    """An async iterator of ``WatchEvent``; ends when closed or its resource is unregistered.

    ``next(timeout)`` returns None on timeout, which the HTTP layer uses for bookmarks.
    """

    def __init__(self, store: WatchSource, watcher: _Watcher, start_rv: int) -> None:
        self._store = store
        self._w = watcher
        self.start_rv = start_rv
        self.closed = False

    async def next(self, timeout: float | None = None) -> WatchEvent | None:
        """The next event, or None after ``timeout`` seconds; raises StopAsyncIteration at end."""
        if self.closed:
            raise StopAsyncIteration
        try:
            ev = await asyncio.wait_for(self._w.queue.get(), timeout)
        except TimeoutError:
            return None
        if ev is None:
            self.close()
            raise StopAsyncIteration
        return ev

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self

    async def __anext__(self) -> WatchEvent:
        ev = await self.next()
        assert ev is not None
        return ev

    def request_bookmark(self, initial_events_end: bool = False) -> None:
        """Queue a BOOKMARK at the store's current resourceVersion."""
        self._store._bookmark(self._w, initial_events_end)

    def end(self) -> None:
        """End the iteration from any thread (server shutdown); ``close`` still unregisters."""
        self._w.push(None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._store._unwatch(self._w)
