"""Values on the operator's real /metrics endpoint, and Events for API failures.

Its own module so that the counters checked here see only this module's jobs.
"""

from __future__ import annotations

import pytest
from operator_harness import Cluster, Operator, condition, training_job

pytestmark = pytest.mark.slow


def sample(operator: Operator, name: str, **labels: str) -> float:
    return operator.metrics().get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_each_transition_once(cluster: Cluster, operator: Operator, ns: str) -> None:
    cluster.apply(ns, training_job("counted", "exit 0", workers=2))
    cluster.wait_phase(ns, "counted", "Succeeded", operator=operator)
    # The job keeps being reconciled (its pods' events); the counters must not move again.
    cluster.wait(lambda: sample(operator, "elastrain_jobs", phase="Succeeded") == 1, "phase gauge")
    assert sample(operator, "elastrain_jobs_created_total", namespace=ns) == 1
    assert sample(operator, "elastrain_jobs_succeeded_total", namespace=ns) == 1
    assert sample(operator, "elastrain_pods_created_total", namespace=ns) == 2
    assert sample(operator, "elastrain_job_to_pod_creation_seconds_count") == 1
    assert sample(operator, "elastrain_job_time_to_running_seconds_count") == 1
    assert sample(operator, "elastrain_reconcile_duration_seconds_count") > 0
    assert sample(operator, "elastrain_workqueue_depth") >= 0


def test_refused_pod_creates_become_aggregated_events_and_metrics_then_fail_the_job(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    # An init container whose name is no DNS label passes the CRD and the operator's parser
    # (both leave initContainers to the API server) but the API server refuses the pod.
    job = training_job("refused", "exit 0")
    pod_spec = job["spec"]["replicaSpecs"]["worker"]["template"]["spec"]
    pod_spec["initContainers"] = [{"name": "Bad_Init", "image": "busybox", "command": ["true"]}]
    cluster.apply(ns, job)

    def repeated_failure() -> list[dict[str, object]]:
        return [
            e
            for e in cluster.events(ns, "refused")
            if e["reason"] == "FailedCreatePod" and int(e.get("count", 1)) >= 2
        ]

    (event,) = cluster.wait(repeated_failure, "FailedCreatePod counted twice (aggregated)")
    assert event["type"] == "Warning"
    assert "refused-worker-0" in str(event["message"])
    # Retried with back-off, never crashing: the operator still serves and still counts.
    labels = {"namespace": ns, "error": "Invalid"}
    assert sample(operator, "elastrain_pod_create_failures_total", **labels) >= 2
    assert sample(operator, "elastrain_reconcile_errors_total", error="Invalid") >= 2
    assert not cluster.pods(ns, "refused")

    # The same template would be refused forever: after 3 tries the job fails, saying why in
    # the server's words, and the operator stops trying.
    job_now = cluster.wait_phase(ns, "refused", "Failed", operator=operator)
    failed = condition(job_now, "Failed")
    assert failed is not None and failed["reason"] == "CreateRejected"
    assert "refused-worker-0" in failed["message"] and "Bad_Init" in failed["message"]
    tries = sample(operator, "elastrain_pod_create_failures_total", **labels)
    assert tries == 3
    assert any(e["reason"] == "CreateRejected" for e in cluster.events(ns, "refused"))
    assert sample(operator, "elastrain_jobs_failed_total", namespace=ns, reason="CreateRejected")
