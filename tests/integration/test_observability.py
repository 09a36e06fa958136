"""Observability end to end: a real Prometheus scrapes the real operator and a real trainer.

One scenario, on whichever cluster the suite runs on: a DDP job trains under torchrun, a
flaky job restarts and then fails, an elastic job is scaled, and a job's pods are refused by
the API server. Then, through Prometheus's HTTP API and the job's status:

- ``status.progress`` appears and moves (the operator reads rank 0's metrics endpoint);
- the operator's counters moved as the jobs ran, failed, restarted and scaled;
- the trainer's series arrive with the PodMonitor's labels, and the step rises;
- ``promtool check metrics`` is clean on the operator's live endpoint;
- every query of the shipped dashboard parses and returns data, and every alert expression
  parses and reads only series that have data.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elastrain_dev import promql
from operator_harness import Cluster, Operator, training_job
from prometheus_harness import Prometheus, promtool_check_metrics, target_group, value

pytestmark = pytest.mark.slow

TRAINER_IMAGE = "ghcr.io/elastrain/trainer:0.1.0"
METRICS_PORT = 9090


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """The operator, reading progress every second (the default 15 s would only slow this)."""
    log = Path(tmp_path_factory.mktemp("operator")) / "operator.log"
    op = Operator(cluster.operator_kubeconfig, log, "--progress-interval", "1").start()
    try:
        yield op
    finally:
        op.kill()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with Prometheus(Path(tmp_path_factory.mktemp("prometheus"))) as prom:
        yield prom


def ddp_job(name: str, steps: int) -> dict[str, Any]:
    """The real trainer under torchrun on 2 workers, restricted-PSS clean, slow enough to watch."""
    container = {
        "name": "trainer",
        "image": TRAINER_IMAGE,
        "command": ["elastrain-torchrun", "--no-python", "elastrain-train"],
        "args": (
            f"--mode ddp --model mlp --steps {steps} --step-delay 0.05 --log-every 500 "
            f"--metrics-port {METRICS_PORT}"
        ).split(),
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
    }
    pod = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    return {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "replicaSpecs": {
                "worker": {"replicas": 2, "restartPolicy": "OnFailure", "template": {"spec": pod}}
            },
            "runPolicy": {"cleanPodPolicy": "All"},
        },
    }


def progress(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return dict(((cluster.job(ns, name) or {}).get("status") or {}).get("progress") or {})


def has_data(results: list[dict[str, Any]]) -> bool:
    return bool(results)


def test_prometheus_sees_the_operator_and_the_trainer(
    cluster: Cluster, operator: Operator, prometheus: Prometheus, ns: str
) -> None:
    # The operator is scraped from the start, so its counters have samples before and after
    # every change, as `increase()` and `rate()` need.
    operator_target = target_group([f"127.0.0.1:{operator.metrics_port}"])
    prometheus.set_targets([operator_target])
    cluster.apply(ns, ddp_job("train", steps=100000))
    # Fails with a retryable code, is replaced once (Restarting), then fails: backoffLimit 1.
    flaky = training_job("flaky", "exit 143", restart="ExitCode", run_policy={"backoffLimit": 1})
    cluster.apply(ns, flaky)
    elastic = {"minReplicas": 1, "maxReplicas": 3}
    cluster.apply(ns, training_job("elastic", "sleep 3600", elasticPolicy=elastic))
    refused = training_job("refused", "exit 0")
    refused_pod = refused["spec"]["replicaSpecs"]["worker"]["template"]["spec"]
    refused_pod["initContainers"] = [{"name": "Bad_Init", "image": "busybox", "command": ["true"]}]
    cluster.apply(ns, refused)

    cluster.wait_phase(ns, "flaky", "Failed", operator=operator)
    cluster.wait_phase(ns, "elastic", "Running", operator=operator)
    cluster.kubectl("-n", ns, "scale", "trainingjob", "elastic", "--replicas=2")
    cluster.wait(
        lambda: (((cluster.job(ns, "elastic") or {}).get("status") or {}).get("replicaStatuses")
                 or {}).get("worker", {}).get("ready") == 2,
        "elastic scaled to 2 ready workers",
    )  # fmt: skip
    cluster.wait_phase(ns, "train", "Running", operator=operator, timeout=120)

    # Targets: the operator, and every trainer pod as the PodMonitor relabels it.
    def trainer_targets() -> list[dict[str, Any]]:
        groups = []
        for pod in cluster.pods(ns, "train"):
            ip = (pod.get("status") or {}).get("podIP")
            labels = pod["metadata"]["labels"]
            if not ip:
                return []
            groups.append(
                target_group(
                    [f"{ip}:{METRICS_PORT}"],
                    namespace=ns,
                    pod=pod["metadata"]["name"],
                    trainingjob=labels["elastrain.dev/job-name"],
                    replica_type=labels["elastrain.dev/replica-type"],
                    replica_index=labels["elastrain.dev/replica-index"],
                )
            )
        return groups

    trainers = cluster.wait(trainer_targets, "trainer pod IPs")
    prometheus.set_targets([operator_target, *trainers])

    # Progress in the status, from rank 0's endpoint, and moving.
    first = cluster.wait(lambda: progress(cluster, ns, "train").get("step"), "status.progress")

    def moved() -> dict[str, Any] | None:
        now = progress(cluster, ns, "train")
        return now if now.get("step", 0) > first else None

    later = cluster.wait(moved, "status.progress moving", timeout=120)
    assert later["totalSteps"] == 100000 and later["worldSize"] == 2
    assert 0 <= later["percent"] <= 100 and later["loss"] >= 0 and later["samplesPerSecond"] > 0
    assert later["lastUpdateTime"] and later["lastStepTime"]

    # The trainer's series, with the PodMonitor's labels; the step rises between scrapes.
    step = f'max(elastrain_trainer_step{{namespace="{ns}", trainingjob="train"}})'
    seen = value(prometheus.wait_for(step, has_data, timeout=60)[0])
    prometheus.wait_for(step, lambda r: bool(r) and value(r[0]) > seen, timeout=60)
    world = prometheus.query('min(elastrain_trainer_world_size{trainingjob="train"})')
    assert world and value(world[0]) == 2

    # The operator's counters moved as the jobs ran, failed, restarted and scaled.
    def one(expr: str) -> float:
        results = prometheus.wait_for(expr, has_data, timeout=60)
        return value(results[0])

    on_ns = f'namespace="{ns}"'
    prometheus.wait_for(
        f"sum(elastrain_jobs_created_total{{{on_ns}}})", lambda r: bool(r) and value(r[0]) == 4
    )
    reason = 'reason="BackoffLimitExceeded"'
    assert one(f"elastrain_jobs_failed_total{{{on_ns}, {reason}}}") == 1
    assert one(f"sum(elastrain_jobs_restarted_total{{{on_ns}}})") >= 1
    assert one(f'elastrain_job_scale_events_total{{{on_ns}, direction="up"}}') == 1
    assert one('elastrain_pod_replacement_seconds_count{role="worker"}') >= 1
    assert one("elastrain_job_scale_duration_seconds_count") >= 1
    assert one('sum(elastrain_reconcile_errors_total{error="Invalid"})') >= 1
    assert one('elastrain_pods{role="worker", phase="Running"}') >= 4
    assert one(f"elastrain_gpus_requested{{{on_ns}}}") == 0
    assert one(f"elastrain_jobs_stalled{{{on_ns}}}") == 0

    # promtool accepts the operator's live exposition.
    ok, output = promtool_check_metrics(operator_text(operator))
    assert ok, output

    # Every dashboard query parses and returns data for this running job. A range function
    # needs two samples of a series in its window, and a series born late (a failure, a
    # scale) has them one scrape later: poll each query, with a deadline, rather than sample.
    for expr in promql.dashboard_queries():
        prometheus.wait_for(promql.to_promql(expr, namespace=ns), has_data, timeout=60)

    # Every alert expression parses, and every series it reads has data.
    for rule in promql.alert_rules():
        prometheus.query(rule["expr"])  # raises PromQLError with Prometheus's message
        for name in sorted(promql.metric_names(rule["expr"])):
            assert prometheus.query(f"count({name})"), f"{rule['alert']}: no data for {name}"


def operator_text(operator: Operator) -> str:
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())
