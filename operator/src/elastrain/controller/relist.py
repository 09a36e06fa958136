"""Ghosts: objects an index still holds after the API server deleted them, and their sweep.

kopf re-lists a resource whenever its watch expires (410 Gone) or cannot resume, and replays
every listed object as an event of type ``None``. It never learns of the objects deleted while
it was not watching: their ``DELETED`` events went with the expired watch, and kopf drops an
object from its indexes only on such an event (kopf 1.45, ``indexing.index_resource``).
client-go's informers derive those deletions from the re-list (``DeletedFinalStateUnknown``);
kopf does not. A ghost pod makes the planner count a worker that does not exist, so the job
waits for it forever; a ghost job keeps its metrics. The fault-proxy suite found this
(``tests/reliability/test_api_faults.py``).

So a listing event schedules a sweep of its kind once the listing has had :data:`SETTLE_SECONDS`
to finish: one paged list per namespace the index holds (children by the job-name label), then
a GET of each indexed object that list lacks, since it may have been created after the list's
snapshot. An object that is gone, or whose name now belongs to another uid, is buried in the
:class:`~elastrain.controller.store.Store` and its job queued. A sweep that fails is retried.
Each sweep ends by pruning the buried uids no index holds any more (``Store.prune``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from elastrain.api.constants import LABEL_JOB_NAME
from elastrain.api.kinds import TRAINING_JOB
from elastrain.controller.store import JobKey, Store, uid_of
from elastrain.kube import errors, resources
from elastrain.kube.client import Kube

log = logging.getLogger(__name__)

# How long after a listing event the sweep runs: kopf replays a listing within moments, and a
# sweep that starts early only finds fewer ghosts, which the next listing's sweep catches.
SETTLE_SECONDS = 2.0
# After a failed sweep (the API server was unavailable), try again this much later.
RETRY_SECONDS = 10.0


class GhostSweeper:
    """Sweeps one kind's index after kopf re-listed it; all methods run on the event loop."""

    def __init__(
        self,
        kube: Kube,
        store: Store,
        enqueue: Callable[[JobKey], None],
        *,
        settle: float = SETTLE_SECONDS,
        on_ghost: Callable[[str], None] | None = None,
    ) -> None:
        self._kube = kube
        self._store = store
        self._enqueue = enqueue
        self._settle = settle
        self._on_ghost = on_ghost
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def listed(self, kind: str) -> None:
        """kopf replayed a ``kind`` object from a listing: sweep that kind soon (once)."""
        if kind in self._timers:
            return
        self._schedule(kind, self._settle)

    def _schedule(self, kind: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._timers[kind] = loop.call_later(delay, self._start, kind)

    def _start(self, kind: str) -> None:
        self._timers.pop(kind, None)
        task = asyncio.create_task(self._run(kind), name=f"ghost-sweep-{kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, kind: str) -> None:
        try:
            found = await self.sweep(kind)
        except errors.ApiError as exc:
            log.warning(
                "sweep of %s ghosts failed (%s); retrying in %.0fs", kind, exc, RETRY_SECONDS
            )
            if kind not in self._timers:
                self._schedule(kind, RETRY_SECONDS)
            return
        if found:
            log.info("buried %d %s ghost(s) the watch missed the deletion of", found, kind)

    async def sweep(self, kind: str) -> int:
        """Bury every ghost of ``kind`` now; returns how many were found."""
        index = self._store.index_of(kind)
        if index is None:
            return 0
        by_namespace: dict[str, list[tuple[JobKey, dict[str, Any]]]] = {}
        for key in list(index.keys()):
            for obj in self._store.objects(kind, key):
                by_namespace.setdefault(key[0], []).append((key, obj))
        selector = None if kind == TRAINING_JOB.kind else LABEL_JOB_NAME
        found = 0
        for namespace, entries in by_namespace.items():
            live = await resources.list_uids(self._kube, kind, namespace, selector)
            for key, obj in entries:
                uid = uid_of(obj)
                if not uid or uid in live:
                    continue
                name = str(obj["metadata"].get("name") or "")
                if await resources.get_uid(self._kube, kind, namespace, name) == uid:
                    continue  # created after the list's snapshot: alive
                self._store.bury(uid)
                found += 1
                if self._on_ghost is not None:
                    self._on_ghost(kind)
                log.debug("%s %s/%s (uid %s): its deletion was missed", kind, namespace, name, uid)
                self._enqueue(key)
        self._store.prune()
        return found

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
