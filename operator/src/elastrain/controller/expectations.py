"""Expectations: do not reconcile a job again until the watch has shown our own last writes.

The indexes lag the API by a watch event. Without this, the pod events that follow a status
write re-run the planner against an index that does not yet hold the pods just created (or
still shows the ones just deleted, or the job before our status write): it plans the same
creates again (409s), the same status again (409s), and wastes a round trip per pod. This is
controller-runtime's and kube-controller-manager's "expectations" mechanism: record what we
are about to write *before* writing, tick each item off when its watch event arrives (or when
the write failed or found the object already there), and hold the job's reconciles until
nothing is outstanding or ``timeout`` passes, the bound on a missed event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from elastrain.controller.store import JobKey

Child = tuple[str, str]  # (kind, name)


@dataclass
class _Pending:
    deadline: float
    creates: set[Child] = field(default_factory=set)
    deletes: dict[Child, str | None] = field(default_factory=dict)  # -> uid being deleted
    stale_version: str | None = None  # the job resourceVersion our status write replaces
    job_deleted: bool = False  # we deleted the job itself (TTL): wait for its deletion event

    def empty(self) -> bool:
        return (
            not self.creates
            and not self.deletes
            and self.stale_version is None
            and not self.job_deleted
        )


class Expectations:
    """Outstanding writes per job key; all methods run on the event loop."""

    def __init__(self, timeout: float = 15.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout = timeout
        self._clock = clock
        self._pending: dict[JobKey, _Pending] = {}

    def _entry(self, key: JobKey) -> _Pending:
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = _Pending(deadline=0.0)
        entry.deadline = self._clock() + self._timeout
        return entry

    def expect_status(self, key: JobKey, resource_version: str) -> None:
        self._entry(key).stale_version = resource_version

    def expect_creates(self, key: JobKey, children: Iterable[Child]) -> None:
        new = set(children)
        if new:
            self._entry(key).creates.update(new)

    def expect_deletes(self, key: JobKey, children: Iterable[tuple[Child, str | None]]) -> None:
        new = dict(children)
        if new:
            self._entry(key).deletes.update(new)

    def expect_job_deletion(self, key: JobKey) -> None:
        """We deleted the job: its children's deletion events would otherwise re-plan it from
        the index's last copy and write a status to an object that is gone (404)."""
        self._entry(key).job_deleted = True

    def lower(self, key: JobKey, child: Child | None = None, *, status: bool = False) -> None:
        """A write failed or had nothing to do: stop waiting for its event."""
        entry = self._pending.get(key)
        if entry is None:
            return
        if status:
            entry.stale_version = None
        if child is not None:
            entry.creates.discard(child)
            entry.deletes.pop(child, None)
        self._drop_if_empty(key, entry)

    def observe_job(
        self, key: JobKey, resource_version: str | None, *, terminating: bool = False
    ) -> None:
        """A job event (not DELETED, which forgets the key). A job held by someone's finalizer
        shows up terminating rather than deleted: it may be reconciled again."""
        entry = self._pending.get(key)
        if entry is None:
            return
        if entry.stale_version not in (None, resource_version):
            entry.stale_version = None
        if terminating:
            entry.job_deleted = False
        self._drop_if_empty(key, entry)

    def observe_child(self, key: JobKey, kind: str, body: dict[str, Any], deleted: bool) -> None:
        entry = self._pending.get(key)
        if entry is None:
            return
        meta = body.get("metadata") or {}
        child = (kind, str(meta.get("name")))
        entry.creates.discard(child)
        if child in entry.deletes:
            uid = entry.deletes[child]
            if deleted or meta.get("deletionTimestamp") or (uid and meta.get("uid") != uid):
                del entry.deletes[child]
        self._drop_if_empty(key, entry)

    def forget(self, key: JobKey) -> None:
        self._pending.pop(key, None)

    def unmet(self, key: JobKey) -> float | None:
        """Seconds left to wait for ``key``'s outstanding events, or None when it may run."""
        entry = self._pending.get(key)
        if entry is None:
            return None
        left = entry.deadline - self._clock()
        if left <= 0 or entry.empty():
            del self._pending[key]
            return None
        return left

    def describe(self, key: JobKey) -> str:
        """What ``key`` still waits for, for debug logs."""
        entry = self._pending.get(key)
        if entry is None:
            return "nothing"
        return (
            f"creates={sorted(entry.creates)} deletes={sorted(entry.deletes)} "
            f"status-after-version={entry.stale_version} job-deleted={entry.job_deleted}"
        )

    def _drop_if_empty(self, key: JobKey, entry: _Pending) -> None:
        if entry.empty():
            self._pending.pop(key, None)
