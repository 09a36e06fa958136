"""The real Reconciler, recorder and workers wired to a :class:`FakeKube`, and hand-made objects.

Only the API server is fake; the store holds the job as kopf's index would.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, cast

from elastrain.api.kinds import POD_GROUP
from elastrain.controller.expectations import Expectations
from elastrain.controller.queue import WorkQueue
from elastrain.controller.reconcile import Reconciler
from elastrain.controller.store import JobKey, Store
from elastrain.controller.workers import Workers
from elastrain.kube.client import Kube
from elastrain.kube.discovery import CrdProbe
from elastrain.kube.events import EventRecorder
from elastrain.metrics.registry import Metrics
from fake_kube import FakeKube

NS = "team-a"
KEY: JobKey = (NS, "mnist")
JOB_UID = "job-uid-1"


def make_job(status: dict[str, Any] | None = None, workers: int = 2) -> dict[str, Any]:
    """A TrainingJob as the index holds it (the real planner accepts it)."""
    job: dict[str, Any] = {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {
            "name": "mnist",
            "namespace": NS,
            "uid": JOB_UID,
            "resourceVersion": "7",
            "generation": 1,
            "creationTimestamp": "2026-01-01T12:00:00Z",
        },
        "spec": {
            "replicaSpecs": {
                "worker": {
                    "replicas": workers,
                    "restartPolicy": "OnFailure",
                    "template": {
                        "spec": {"containers": [{"name": "trainer", "image": "example.com/t:1"}]}
                    },
                }
            }
        },
    }
    if status is not None:
        job["status"] = status
    return job


def owner() -> dict[str, Any]:
    return {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "name": "mnist",
        "uid": JOB_UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child(kind: str, name: str, uid: str | None = None) -> dict[str, Any]:
    """A child as the planner creates it (``uid`` None) or as the index holds it."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "labels": {"elastrain.dev/job-name": "mnist"},
        "ownerReferences": [owner()],
    }
    if uid is not None:
        meta["uid"] = uid
    api_version = POD_GROUP.api_version if kind == "PodGroup" else "v1"
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


@dataclass
class Rig:
    kube: FakeKube
    store_jobs: dict[JobKey, list[dict[str, Any]]]
    metrics: Metrics
    expectations: Expectations
    recorder: EventRecorder
    reconciler: Reconciler

    def workers(self, base_delay: float = 30.0, count: int = 1) -> Workers:
        queue: WorkQueue[JobKey] = WorkQueue(base_delay=base_delay)
        return Workers(queue, self.reconciler, self.recorder, self.metrics, count)

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def rig(job: dict[str, Any] | None = None, **reconciler_options: Any) -> Rig:
    """A reconciler over a store holding ``job`` (a fresh :func:`make_job` by default);
    ``reconciler_options`` go to the Reconciler (``status_hold``, ``clock``)."""
    kube = FakeKube()
    client = cast(Kube, kube)  # FakeKube fakes Kube at its one seam, ``request``
    jobs = {KEY: [copy.deepcopy(job if job is not None else make_job())]}
    store = Store(jobs, {}, {}, {})
    metrics = Metrics()
    expectations = Expectations()
    recorder = EventRecorder(client)
    reconciler = Reconciler(
        client,
        store,
        recorder,
        metrics,
        CrdProbe(client, POD_GROUP),
        expectations,
        **reconciler_options,
    )
    return Rig(kube, jobs, metrics, expectations, recorder, reconciler)
