"""An informer: list, then watch from the list's resourceVersion, with a local cache.

As client-go's reflector: watches ask for bookmarks (``allowWatchBookmarks``) so the version
to resume from stays fresh on quiet resources; a watch the server ends is resumed from the
last version seen; 410 Gone (the version was compacted away) or any error forces a relist,
after a back-off. A relist is diffed against the cache, so the handler still sees exactly
the changes (ADDED, MODIFIED, DELETED) it missed, with the old object where there was one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from elastrain_sandbox.agent.kubeclient import KubeClient
from elastrain_sandbox.agent.source import Obj, SourceError

log = logging.getLogger(__name__)

Handler = Callable[[str, Obj, Obj | None], Awaitable[None]]
WATCH_TIMEOUT = 300.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 10.0


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return (str(meta.get("namespace") or ""), str(meta["name"]))


class Informer:
    """Follows ``path`` (a collection URL) with optional ``field_selector``; ``handler`` gets
    every change, in order, after the cache holds it."""

    def __init__(
        self,
        client: KubeClient,
        path: str,
        handler: Handler | None = None,
        *,
        field_selector: str | None = None,
    ) -> None:
        self.client = client
        self.path = path
        self.handler = handler
        self.field_selector = field_selector
        self.cache: dict[tuple[str, str], Obj] = {}
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"informer {self.path}")

    async def stop(self) -> None:
        """Cancel the informer's task and wait for it. A cancellation of the caller itself is
        passed on, never taken for the informer's own: a handler of one informer stops
        others (``HttpSource`` unwatching a namespace), and the swallowed cancellation of
        that handler's task once left ``HttpSource.stop`` waiting on it for ever."""
        task = self._task
        if task is None:
            return
        self._task = None
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    def items(self) -> list[Obj]:
        return list(self.cache.values())

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.cache.get((namespace, name))

    def _params(self) -> dict[str, str]:
        return {"fieldSelector": self.field_selector} if self.field_selector else {}

    async def _run(self) -> None:
        delay = BACKOFF_BASE
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._relist()
                version = await self._watch(version)
                delay = BACKOFF_BASE
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                gone = isinstance(exc, SourceError) and exc.code == 410
                if not gone:
                    log.warning("informer %s: %s; relisting in %.1fs", self.path, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BACKOFF_CAP)
                version = None

    async def _relist(self) -> str:
        listed = await self.client.get(self.path, self._params())
        fresh = {_key(o): o for o in listed.get("items") or []}
        for key, old in list(self.cache.items()):
            if key not in fresh:
                del self.cache[key]
                await self._handle("DELETED", old, old)
        for key, obj in fresh.items():
            before = self.cache.get(key)
            self.cache[key] = obj
            if before is None:
                await self._handle("ADDED", obj, None)
            elif before["metadata"].get("resourceVersion") != obj["metadata"].get(
                "resourceVersion"
            ):
                await self._handle("MODIFIED", obj, before)
        self.synced.set()
        return str(listed.get("metadata", {}).get("resourceVersion") or "")

    async def _watch(self, version: str) -> str:
        params = {**self._params(), "resourceVersion": version, "allowWatchBookmarks": "true"}
        async for event in self.client.watch(self.path, params, WATCH_TIMEOUT):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                raise SourceError(int(obj.get("code") or 0), str(obj.get("message")))
            version = str(obj.get("metadata", {}).get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue
            key = _key(obj)
            old = self.cache.get(key)
            if kind == "DELETED":
                self.cache.pop(key, None)
                await self._handle("DELETED", obj, old)
            else:
                self.cache[key] = obj
                await self._handle("ADDED" if old is None else "MODIFIED", obj, old)
        return version

    async def _handle(self, kind: str, obj: Obj, old: Obj | None) -> None:
        if self.handler is None:
            return
        try:
            await self.handler(kind, obj, old)
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad event never stops the informer
            log.exception("informer %s: handler failed on %s", self.path, kind)
