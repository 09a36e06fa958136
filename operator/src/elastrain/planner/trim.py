"""Giving Pending workers up: ``elasticPolicy.trimPendingWorkers``.

An elastic job runs with the workers it gets; the others wait Pending for a node. Reporting
them (``pending``) is enough where a cluster autoscaler will add nodes. Where none will, a
Pending worker holds a quota slot and a GPU request in the scheduler's queue for nothing, and
``kubectl get`` shows a job that asks for more than it will ever have. With
``trimPendingWorkers``, once workers are Pending past ``pendingTimeoutSeconds`` the job's
worker count becomes the workers it keeps: at least ``minReplicas``, and never below a worker
that runs, since only the highest indices are removed (worker 0 hosts the rendezvous). The
Pending workers above it are deleted like a scale-down, and none is created again.

The trimmed count lives in ``status.tracking.trimmed`` with the spec's count it was trimmed
from; the spec is never written (the operator does not own it). The trim holds while the
spec asks for that count, and ends as soon as anyone changes it: ``kubectl scale``, an HPA or
an edit is a new wish, planned from scratch.
"""

from __future__ import annotations

import dataclasses

from elastrain.api import constants as c
from elastrain.api.types import TrainingJob
from elastrain.planner import env
from elastrain.planner.observe import PodView
from elastrain.planner.restarts import Tracking, Trimmed


def effective(job: TrainingJob) -> tuple[TrainingJob, bool]:
    """``job`` with its worker count as trimmed, and whether a recorded trim has ended (the
    spec's count moved on, or the policy was turned off): the plan then drops it."""
    # Only the trim entry: the plan loads the whole of ``status.tracking`` once, in ``State``.
    tracking = job.status.get("tracking")
    trimmed = Trimmed.load(tracking.get("trimmed") if isinstance(tracking, dict) else None)
    if trimmed is None:
        return job, False
    elastic = job.spec.elastic_policy
    spec = env.replicas(job, c.ROLE_WORKER)
    if elastic is None or not elastic.trim_pending_workers or spec != trimmed.spec:
        return job, True
    workers = dataclasses.replace(job.spec.replica_specs[c.ROLE_WORKER], replicas=trimmed.to)
    specs = {**job.spec.replica_specs, c.ROLE_WORKER: workers}
    return dataclasses.replace(job, spec=dataclasses.replace(job.spec, replica_specs=specs)), False


def trim_to(job: TrainingJob, pods: tuple[PodView, ...], overdue: list[PodView]) -> int | None:
    """The worker count to give the ``overdue`` Pending workers up at, or None to keep them:
    the highest index of a worker that is not overdue, plus one, and at least minReplicas."""
    elastic = job.spec.elastic_policy
    if elastic is None or not elastic.trim_pending_workers or not overdue:
        return None
    given_up = {p.name for p in overdue}
    kept = [
        p.index
        for p in pods
        if p.role == c.ROLE_WORKER and not p.terminating and p.name not in given_up
    ]
    target = max(elastic.min_replicas, max(kept, default=-1) + 1)
    return target if target < env.replicas(job, c.ROLE_WORKER) else None


def record(tracking: Tracking, job: TrainingJob, to: int) -> None:
    """Remember the trim, with the spec's own count (the one a later change is compared with)."""
    before = tracking.trimmed
    spec = before.spec if before is not None else env.replicas(job, c.ROLE_WORKER)
    tracking.trimmed = Trimmed(to=to, spec=spec)


__all__ = ["effective", "record", "trim_to"]
