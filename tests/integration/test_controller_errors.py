"""A planner that raises must not stop the operator: Warning Event, error metric, back-off.

The real planner never raises (it is fuzz-tested), so this patches one that does into the real
reconciler and workers, which talk to a real API server (the module's cluster) through the real
kube client. No operator runs in this module: the test's own workers are the only reconciler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from elastrain.api.kinds import POD_GROUP
from elastrain.controller import reconcile
from elastrain.controller.expectations import Expectations
from elastrain.controller.queue import WorkQueue
from elastrain.controller.reconcile import Reconciler
from elastrain.controller.store import JobKey, Store
from elastrain.controller.workers import Workers
from elastrain.kube.client import Kube, load_api_client
from elastrain.kube.discovery import CrdProbe
from elastrain.kube.events import EventRecorder
from elastrain.kube.ratelimit import TokenBucket
from elastrain.metrics.registry import Metrics
from elastrain.planner.model import Observed, Plan
from operator_harness import Cluster

JOB = """
apiVersion: elastrain.dev/v1alpha1
kind: TrainingJob
metadata: {name: boom}
spec:
  replicaSpecs:
    worker:
      replicas: 1
      template:
        spec:
          containers: [{name: main, image: busybox, command: [sh, -c, "exit 0"]}]
"""


def exploding_planner(job: dict[str, Any], observed: Observed) -> Plan:
    raise ZeroDivisionError("a planner bug")


@pytest.fixture
def job(cluster: Cluster) -> Iterator[dict[str, Any]]:
    ns = cluster.namespace("planner-errors")
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=JOB)
    try:
        found = cluster.job(ns, "boom")
        assert found is not None
        yield found
    finally:
        cluster.kubectl("delete", "-n", ns, "-f", "-", "--wait=false", input=JOB)


def test_planner_exception_becomes_a_warning_and_a_backoff(
    cluster: Cluster, job: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile, "plan", exploding_planner)
    ns = job["metadata"]["namespace"]
    key: JobKey = (ns, "boom")
    metrics = Metrics()

    async def scenario() -> float:
        kube = Kube(
            load_api_client(kubeconfig=str(cluster.operator_kubeconfig)), TokenBucket(20, 20)
        )
        try:
            store = Store({key: [job]}, {}, {}, {})
            recorder = EventRecorder(kube)
            reconciler = Reconciler(
                kube, store, recorder, metrics, CrdProbe(kube, POD_GROUP), Expectations()
            )
            queue: WorkQueue[JobKey] = WorkQueue(base_delay=30)
            workers = Workers(queue, reconciler, recorder, metrics, count=1)
            await workers.process(key)
            await workers.process(key)
            delay = queue.backoff(key)  # the third failure's delay: two already happened
            queue.close()
            return delay
        finally:
            kube.close()

    assert asyncio.run(scenario()) == 120  # 30, 60, then 120: backing off, not looping
    errors = metrics.registry.get_sample_value(
        "elastrain_reconcile_errors_total", {"error": "ZeroDivisionError"}
    )
    assert errors == 2
    events = [e for e in cluster.events(ns, "boom") if e["reason"] == "ReconcileError"]
    assert len(events) == 1  # aggregated
    assert events[0]["count"] == 2
    assert events[0]["type"] == "Warning"
    assert "a planner bug" in events[0]["message"]
    assert events[0]["involvedObject"]["uid"] == job["metadata"]["uid"]
