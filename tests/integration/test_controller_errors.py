"""A planner that raises must not stop the operator: Warning Event, error metric, back-off.

The real planner never raises (it is fuzz-tested), so this patches one that does into the real
reconciler and workers, which talk to a real API server (the sandbox) through the real kube client.
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
from elastrain_sandbox.embedded import Sandbox
from operator_harness import TJ, Cluster
from sandbox_fixtures import Kubectl

JOB = """
apiVersion: elastrain.dev/v1alpha1
kind: TrainingJob
metadata: {name: boom, namespace: default}
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
def job(shared_sandbox: Sandbox) -> Iterator[dict[str, Any]]:
    kubectl = Kubectl(shared_sandbox)
    Cluster(shared_sandbox, kubectl).install_crd()
    kubectl("apply", "-f", "-", input=JOB)
    try:
        yield shared_sandbox.store.get(TJ, "boom", "default")
    finally:
        kubectl("delete", "-f", "-", "--wait=false", input=JOB)
        kubectl.close()


def test_planner_exception_becomes_a_warning_and_a_backoff(
    shared_sandbox: Sandbox, job: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile, "plan", exploding_planner)
    key: JobKey = ("default", "boom")
    metrics = Metrics()

    async def scenario() -> float:
        kube = Kube(
            load_api_client(kubeconfig=str(shared_sandbox.kubeconfig_path)), TokenBucket(20, 20)
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
    events = [
        e
        for e in shared_sandbox.store.list("events", namespace="default").items
        if e["involvedObject"]["name"] == "boom" and e["reason"] == "ReconcileError"
    ]
    assert len(events) == 1  # aggregated
    assert events[0]["count"] == 2
    assert events[0]["type"] == "Warning"
    assert "a planner bug" in events[0]["message"]
    assert events[0]["involvedObject"]["uid"] == job["metadata"]["uid"]
