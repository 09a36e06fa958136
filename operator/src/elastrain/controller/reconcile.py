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

from elastrain.api import timefmt
from elastrain.api.constants import KIND
from elastrain.api.job_status import JobStatus
from elastrain.api.kinds import CHILD_KINDS, TRAINING_JOB
from elastrain.controller.expectations import Expectations
from elastrain.controller.store import JobKey, Store
from elastrain.kube import errors, resources
from elastrain.kube.client import Kube
from elastrain.kube.discovery import CrdProbe
from elastrain.kube.events import EventRecorder, InvolvedObject
from elastrain.metrics.registry import Metrics
from elastrain.planner import plan
from elastrain.planner.model import (
    Delete,
    Observed,
    Plan,
    Rejection,
    TrainerSample,
    Transition,
)
from elastrain.planner.status import only_counts_changed

log = logging.getLogger(__name__)

_CHILD_API_VERSION = {k.kind: k.api_version for k in CHILD_KINDS}


def job_ref(job: dict[str, Any]) -> InvolvedObject:
    """The TrainingJob as the object of an Event."""
    meta = job["metadata"]
    return InvolvedObject(
        TRAINING_JOB.api_version,
        TRAINING_JOB.kind,
        meta["namespace"],
        meta["name"],
        meta.get("uid"),
    )


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


class Reconciler:
    """Observes, plans (:func:`elastrain.planner.plan`) and applies; shared by all workers.
    ``pod_groups`` answers whether the PodGroup CRD is served; ``progress`` gives a job's newest
    trainer reading (``controller.monitor``).

    ``status_hold`` (seconds, 0 for none) delays a status write that only changes pod counts or
    condition messages, and nothing else of the plan: while a job's pods start or finish, each
    phase change of a pod would otherwise be its own write and watch event; any other write
    carries the held one along. Its per-job state is only that moment, and the last child
    create the API server refused as invalid, which the next plan counts
    (``planner.rejections``).
    """

    def __init__(
        self,
        kube: Kube,
        store: Store,
        recorder: EventRecorder,
        metrics: Metrics,
        pod_groups: CrdProbe,
        expectations: Expectations,
        *,
        progress: Callable[[JobKey], TrainerSample | None] | None = None,
        stall_after: float | None = None,
        status_hold: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._status_hold = status_hold
        self._clock = clock
        self._held: dict[JobKey, float] = {}  # key -> when a count-only status was first held
        # key -> the last child create refused as invalid, for the next plan to count.
        self._rejected: dict[JobKey, Rejection] = {}
        self._progress = progress
        self._stall_after = stall_after
        self.store = store
        self._recorder = recorder
        self._metrics = metrics
        self._pod_groups = pod_groups
        self._expectations = expectations

    async def observe(self, key: JobKey) -> Observed:
        return Observed(
            now=datetime.now(UTC),
            pods=self.store.pods(key),
            services=self.store.services(key),
            pod_groups=self.store.pod_groups(key),
            pod_group_crd_available=await self._pod_groups.served(),
            sample=self._progress(key) if self._progress is not None else None,
            stall_after_seconds=self._stall_after,
            rejected=self._rejected.pop(key, None),
        )

    async def reconcile(self, key: JobKey) -> Outcome:
        """Observe, plan and apply for one job; raises :class:`ApplyFailed` on child failures."""
        job = self.store.job(key)
        if job is None:
            self._expectations.forget(key)
            self._held.pop(key, None)
            self._rejected.pop(key, None)
            return Outcome(gone=True)
        wait = self._expectations.unmet(key)
        if wait is not None:
            log.debug("holding %s/%s: %s", *key, self._expectations.describe(key))
            # Our own last writes are not in the indexes yet; their events re-queue the key.
            return Outcome(requeue_after=wait)
        observed = await self.observe(key)
        return await self.apply(job, observed, plan(job, observed))

    async def apply(self, job: dict[str, Any], observed: Observed, plan: Plan) -> Outcome:
        meta = job["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        key = (namespace, name)
        if plan.status is not None:
            hold = self._hold(key, job, plan)
            if hold is not None:
                after = hold if plan.requeue_after is None else min(hold, plan.requeue_after)
                return Outcome(requeue_after=after)
            stop = await self._write_status(key, job, plan.status, plan.transitions)
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
            involved = self._involved(job, event.object_kind, event.object_name, event.object_uid)
            await self._recorder.record(involved, event.type, event.reason, event.message)
        if plan.delete_job:
            try:
                if await resources.delete(
                    self._kube, TRAINING_JOB.kind, namespace, name, meta.get("uid")
                ):
                    self._expectations.expect_job_deletion(key)
            except errors.ApiError as exc:
                failures.append(exc)
        if failures:
            raise ApplyFailed(failures)
        return Outcome(requeue_after=plan.requeue_after)

    def _hold(self, key: JobKey, job: dict[str, Any], plan: Plan) -> float | None:
        """Seconds to hold ``plan``'s status back, or None to write it now."""
        if (
            self._status_hold <= 0
            or plan.status is None
            or plan.transitions
            or plan.creates
            or plan.deletes
            or plan.events
            or plan.delete_job
            or not only_counts_changed(job.get("status") or {}, plan.status)
        ):
            self._held.pop(key, None)
            return None
        now = self._clock()
        left = self._held.setdefault(key, now) + self._status_hold - now
        if left <= 0:
            self._held.pop(key, None)
            return None
        return left

    async def _write_status(
        self, key: JobKey, job: dict[str, Any], status: JobStatus, transitions: list[Transition]
    ) -> Outcome | None:
        """Write the next status; an Outcome when the rest of the plan must not run.

        Its ``transitions`` are counted only once the write succeeded: it carries the observed
        resourceVersion, so of two reconciles computing the same transition only one counts.
        """
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
        created = timefmt.parse(meta.get("creationTimestamp"))
        self._metrics.record(transitions, key[0], created)
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
                self._involved(job, d.kind, d.name, d.uid),
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
            if isinstance(exc, errors.Invalid):
                self._rejected[key] = Rejection(kind, child[1], exc.message)
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
        job: dict[str, Any], kind: str, name: str | None, uid: str | None
    ) -> InvolvedObject:
        """The object an Event is about: the job itself, or its child ``name`` with ``uid``."""
        if name is None or kind == KIND:
            return job_ref(job)
        namespace = job["metadata"]["namespace"]
        return InvolvedObject(_CHILD_API_VERSION.get(kind, "v1"), kind, namespace, name, uid)
