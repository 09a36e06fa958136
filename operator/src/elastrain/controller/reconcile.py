"""One reconcile of one job: observe (from the indexes) -> ``plan()`` -> apply, in the fixed order.

The order is the planner's contract (see ``elastrain.planner.model``): the status goes first,
guarded by the job's observed resourceVersion, so a decision computed from a stale job is
refused (409) before it touches any child; then deletes, then creates, then events. A crash
between two steps leaves a state from which the next reconcile derives the same decisions.
No decision is taken here: this module only executes the Plan and reports failures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elastrain.api.constants import API_VERSION, KIND
from elastrain.controller.expectations import Expectations
from elastrain.controller.store import JobKey, Store
from elastrain.kube import errors, resources
from elastrain.kube.client import Kube
from elastrain.kube.events import EventRecorder, InvolvedObject
from elastrain.metrics.registry import Metrics
from elastrain.metrics.transitions import parse_time, record_transition
from elastrain.planner.model import Delete, Observed, Plan

log = logging.getLogger(__name__)

Planner = Callable[[dict[str, Any], Observed], Plan]

_CHILD_API_VERSION = {
    "Pod": "v1",
    "Service": "v1",
    "PodGroup": f"{resources.PODGROUP_GROUP}/{resources.PODGROUP_VERSION}",
}


def job_ref(job: dict[str, Any]) -> InvolvedObject:
    """The TrainingJob as the object of an Event."""
    meta = job["metadata"]
    return InvolvedObject(API_VERSION, KIND, meta["namespace"], meta["name"], meta.get("uid"))


@dataclass(frozen=True)
class Outcome:
    """What the worker must do next with the key."""

    requeue_after: float | None = None
    gone: bool = False


class ApplyFailed(Exception):
    """Some deletes or creates of a plan failed; Events were posted, the key backs off."""

    def __init__(self, failures: list[errors.ApiError]) -> None:
        self.failures = failures
        super().__init__("; ".join(str(f) for f in failures[:3]))


class CrdProbe:
    """Caches whether the PodGroup CRD is served (discovery), re-asked every ``ttl`` seconds
    or at once after :meth:`invalidate` (a change of that CRD was seen)."""

    def __init__(self, kube: Kube, ttl: float = 60.0) -> None:
        self._kube = kube
        self._ttl = ttl
        self._value = False
        self._checked = -float("inf")
        self._lock = asyncio.Lock()

    async def pod_groups_served(self) -> bool:
        async with self._lock:
            if time.monotonic() - self._checked >= self._ttl:
                try:
                    self._value = await resources.group_version_serves(
                        self._kube,
                        resources.PODGROUP_GROUP,
                        resources.PODGROUP_VERSION,
                        resources.PODGROUP_PLURAL,
                    )
                except errors.ApiError as exc:  # keep the last answer; discovery is best effort
                    log.warning("PodGroup discovery failed, keeping %s: %s", self._value, exc)
                self._checked = time.monotonic()
            return self._value

    def invalidate(self) -> None:
        self._checked = -float("inf")


class Reconciler:
    """Executes plans; shared by all workers (it holds no per-job state)."""

    def __init__(
        self,
        kube: Kube,
        store: Store,
        recorder: EventRecorder,
        metrics: Metrics,
        planner: Planner,
        probe: CrdProbe,
        expectations: Expectations,
    ) -> None:
        self._kube = kube
        self.store = store
        self._recorder = recorder
        self._metrics = metrics
        self._plan = planner
        self._probe = probe
        self._expectations = expectations

    async def observe(self, key: JobKey) -> Observed:
        return Observed(
            now=datetime.now(UTC),
            pods=self.store.pods(key),
            services=self.store.services(key),
            pod_groups=self.store.pod_groups(key),
            pod_group_crd_available=await self._probe.pod_groups_served(),
        )

    async def reconcile(self, key: JobKey) -> Outcome:
        """Observe, plan and apply for one job; raises :class:`ApplyFailed` on child failures."""
        job = self.store.job(key)
        if job is None:
            self._expectations.forget(key)
            return Outcome(gone=True)
        wait = self._expectations.unmet(key)
        if wait is not None:
            log.debug("holding %s/%s: %s", *key, self._expectations.describe(key))
            # Our own last writes are not in the indexes yet; their events re-queue the key.
            return Outcome(requeue_after=wait)
        observed = await self.observe(key)
        plan = self._plan(job, observed)
        return await self.apply(job, observed, plan)

    async def apply(self, job: dict[str, Any], observed: Observed, plan: Plan) -> Outcome:
        meta = job["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        key = (namespace, name)
        if plan.status is not None:
            stop = await self._write_status(key, job, plan.status)
            if stop is not None:
                return stop
        failures: list[errors.ApiError] = []
        self._expectations.expect_deletes(key, (((d.kind, d.name), d.uid) for d in plan.deletes))
        await self._gather([self._delete(job, observed, d, failures) for d in plan.deletes])
        self._expectations.expect_creates(
            key, ((obj["kind"], obj["metadata"]["name"]) for obj in plan.creates)
        )
        await self._gather([self._create(job, obj, failures) for obj in plan.creates])
        for event in plan.events:
            involved = self._involved(job, observed, event.object_kind, event.object_name)
            await self._recorder.record(involved, event.type, event.reason, event.message)
        if plan.delete_job:
            try:
                await resources.delete(self._kube, KIND, namespace, name, meta.get("uid"))
            except errors.ApiError as exc:
                failures.append(exc)
        if failures:
            raise ApplyFailed(failures)
        return Outcome(requeue_after=plan.requeue_after)

    async def _write_status(
        self, key: JobKey, job: dict[str, Any], status: dict[str, Any]
    ) -> Outcome | None:
        """Write the next status; an Outcome when the rest of the plan must not run."""
        meta = job["metadata"]
        old_status = job.get("status") or {}
        patch = resources.merge_patch(old_status, status)
        if not patch:
            return None
        self._expectations.expect_status(key, meta["resourceVersion"])
        try:
            await resources.patch_job_status(
                self._kube, key[0], key[1], meta["resourceVersion"], patch
            )
        except errors.Conflict:
            # The job changed since it was observed: its watch event re-queues the key; the
            # short requeue is a safety net in case that event was coalesced away.
            self._expectations.lower(key, status=True)
            log.debug("status of %s/%s is stale; waiting for the newer job", *key)
            return Outcome(requeue_after=1.0)
        except errors.NotFound:
            self._expectations.forget(key)
            return Outcome(gone=True)
        except BaseException:
            self._expectations.lower(key, status=True)
            raise
        created = parse_time(meta.get("creationTimestamp"))
        record_transition(self._metrics, key[0], created, old_status, status)
        return None

    @staticmethod
    async def _gather(calls: list[Awaitable[None]]) -> None:
        # Children of one job are independent: issue them together, the rate limiter paces them.
        if calls:
            await asyncio.gather(*calls)

    async def _delete(
        self, job: dict[str, Any], observed: Observed, d: Delete, failures: list[errors.ApiError]
    ) -> None:
        namespace = job["metadata"]["namespace"]
        key = (namespace, job["metadata"]["name"])
        try:
            deleted = await resources.delete(self._kube, d.kind, namespace, d.name, d.uid)
        except errors.ApiError as exc:
            self._expectations.lower(key, (d.kind, d.name))
            failures.append(exc)
            await self._recorder.record(
                self._involved(job, observed, d.kind, d.name),
                "Warning",
                f"FailedDelete{d.kind}",
                f"Error deleting {d.kind} {d.name} ({d.reason}): {exc.message}",
            )
            return
        if not deleted:  # already gone: no event of ours to wait for
            self._expectations.lower(key, (d.kind, d.name))
        elif d.kind == "Pod":
            self._metrics.pods_deleted.labels(namespace).inc()

    async def _create(
        self, job: dict[str, Any], obj: dict[str, Any], failures: list[errors.ApiError]
    ) -> None:
        namespace = job["metadata"]["namespace"]
        key = (namespace, job["metadata"]["name"])
        kind = obj.get("kind", "")
        child = (kind, obj["metadata"]["name"])
        try:
            created = await resources.create(self._kube, obj)
        except errors.ApiError as exc:
            self._expectations.lower(key, child)
            failures.append(exc)
            if kind == "Pod":
                self._metrics.pod_create_failures.labels(namespace, type(exc).__name__).inc()
            await self._recorder.record(
                job_ref(job),
                "Warning",
                f"FailedCreate{kind}",
                f"Error creating {kind} {obj['metadata'].get('name')}: {exc.message}",
            )
            return
        if not created:  # it already existed: its event may be long past
            self._expectations.lower(key, child)
        elif kind == "Pod":
            self._metrics.pods_created.labels(namespace).inc()

    @staticmethod
    def _involved(
        job: dict[str, Any], observed: Observed | None, kind: str, name: str | None
    ) -> InvolvedObject:
        if name is None or kind == KIND:
            return job_ref(job)
        uid = None
        if observed is not None:
            children = {"Pod": observed.pods, "Service": observed.services}.get(kind, [])
            uid = next(
                (c["metadata"].get("uid") for c in children if c["metadata"].get("name") == name),
                None,
            )
        namespace = job["metadata"]["namespace"]
        return InvolvedObject(_CHILD_API_VERSION.get(kind, "v1"), kind, namespace, name, uid)
