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
from elastrain.planner.model import Delete, Observed, Plan, TrainerSample, Transition

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
    """Observes, plans (:func:`elastrain.planner.plan`) and applies; shared by all workers
    (it holds no per-job state). ``pod_groups`` answers whether the PodGroup CRD is served;
    ``progress`` gives a job's newest trainer reading (``controller.monitor``)."""

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
    ) -> None:
        self._kube = kube
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
        return await self.apply(job, observed, plan(job, observed))

    async def apply(self, job: dict[str, Any], observed: Observed, plan: Plan) -> Outcome:
        meta = job["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        key = (namespace, name)
        if plan.status is not None:
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
                await resources.delete(
                    self._kube, TRAINING_JOB.kind, namespace, name, meta.get("uid")
                )
            except errors.ApiError as exc:
                failures.append(exc)
        if failures:
            raise ApplyFailed(failures)
        return Outcome(requeue_after=plan.requeue_after)

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
