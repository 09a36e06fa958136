"""The real HorizontalPodAutoscaler scales a TrainingJob, on CPU that metrics-server measured.

Nothing here is ours but the operator and the node agent: kube-controller-manager's HPA
controller reads ``metrics.k8s.io`` from the real metrics-server (built from its Go module by
``make control-plane``), which scrapes the agent's per-node ``/metrics/resource``; the HPA
writes ``spec.replicaSpecs.worker.replicas`` through the TrainingJob's scale subresource and
finds the pods through ``status.selector``; the operator does the rest.

The workers burn about a quarter of a core each until the test, through ``kubectl exec``,
leaves a stop file in their emptyDir, then idle: with a target of 20m per pod, one worker asks
for three (capped at maxReplicas), and once all idle the HPA goes back to minReplicas (no
scale-down stabilisation window, so the test need not wait the default five minutes).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import chart_rbac
import pytest
from cluster_api import Api
from elastrain_sandbox.agent.backoff import BackoffPolicy
from elastrain_sandbox.realcluster import RealCluster
from real_control_plane import REPO, Kubectl, Obj, bin_dir

sys.path.insert(0, str(REPO / "tests" / "integration"))
from operator_harness import Operator
from sandbox_fixtures import ROOT_MARKS, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.real, *ROOT_MARKS]

NS = "hpa"
JOB = "autoscaled"
SELECTOR = f"elastrain.dev/job-name%3D{JOB}"
# Deadlines, not durations: metrics need two 15 s scrapes after a pod is Ready, the HPA syncs
# every 5 s here, and the machine may be busy with other suites.
SCALE_UP_S = 150
SCALE_DOWN_S = 120
# The per-pod target: far below what a burning worker uses even when it gets a fraction of a
# core (116m was measured under a loaded make test), far above what an idle one uses (~2m).
TARGET = "20m"
# A quarter of a core: 25 ms spinning, 75 ms asleep, until STOP exists.
STOP = "/burn/stop"
WORKER = (
    "import os, time\n"
    "while True:\n"
    "    now = time.time()\n"
    f"    if not os.path.exists({STOP!r}):\n"
    "        while time.time() < now + 0.025: pass\n"
    "    time.sleep(0.075)\n"
)


@dataclass
class Env:
    cluster: RealCluster
    api: Api
    kubectl: Kubectl
    operator: Operator


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("real-hpa")
    cluster = RealCluster(
        root / "state",
        root / "admin.kubeconfig",
        bin_dir(),
        nodes=2,
        agent_options={"backoff": BackoffPolicy(0.3, 1.2, 60), "shutdown_grace": 1.0},
        metrics_server=True,
    )
    cluster.start()
    operator = None
    try:
        kubectl = Kubectl(cluster.kubeconfig_path)
        kubectl("apply", "-f", str(REPO / "crds"))
        api = Api(cluster.kubeconfig_path)
        identity = chart_rbac.install_identity(api, cluster.kubeconfig_path, root / "op.kubeconfig")
        operator = Operator(identity, root / "operator.log").start()
        yield Env(cluster, api, kubectl, operator)
    finally:
        if operator is not None:
            operator.kill()
        cluster.stop()


def _job() -> Obj:
    worker = {
        "replicas": 1,
        "restartPolicy": "OnFailure",
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["python3", "-c", WORKER],
                        "resources": {"requests": {"cpu": "100m"}},
                        "volumeMounts": [{"name": "burn", "mountPath": "/burn"}],
                    }
                ],
                "volumes": [{"name": "burn", "emptyDir": {}}],
            }
        },
    }
    return {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": JOB, "namespace": NS},
        "spec": {
            "elasticPolicy": {"minReplicas": 1, "maxReplicas": 3},
            "replicaSpecs": {"worker": worker},
        },
    }


def _hpa() -> Obj:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": JOB, "namespace": NS},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "elastrain.dev/v1alpha1",
                "kind": "TrainingJob",
                "name": JOB,
            },
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "AverageValue", "averageValue": TARGET},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
        },
    }


def _running_workers(api: Api) -> int:
    pods = api.call(
        "GET", f"/api/v1/namespaces/{NS}/pods?labelSelector=elastrain.dev/job-name%3D{JOB}"
    )
    return sum(
        1
        for p in pods.body.get("items", [])
        if (p.get("status") or {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
    )


def _replicas(api: Api) -> int:
    path = f"/apis/elastrain.dev/v1alpha1/namespaces/{NS}/trainingjobs/{JOB}"
    return int(api.call("GET", path).body["spec"]["replicaSpecs"]["worker"]["replicas"])


def test_metrics_server_serves_the_agents_pods_and_nodes(env: Env) -> None:
    """``kubectl top`` through the aggregator: each node's scrape lists its own pods."""
    ns = "top"
    env.kubectl("create", "namespace", ns)
    wait_for(
        lambda: env.api.call("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default").ok,
        30,
        what="default service account",
    )
    for i in range(2):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"burn-{i}", "namespace": ns},
            "spec": {
                "nodeName": f"node-{i}",
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["python3", "-c", WORKER],
                        "volumeMounts": [{"name": "burn", "mountPath": "/burn"}],
                    }
                ],
                "volumes": [{"name": "burn", "emptyDir": {}}],
            },
        }
        env.kubectl.apply(pod)

    def both_measured() -> list[Obj] | None:
        resp = env.api.call("GET", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods")
        items = resp.body.get("items", []) if resp.ok else []
        return items if len(items) == 2 else None

    items = wait_for(both_measured, 90, interval=1, what="metrics of both pods")
    for item in items:
        (container,) = item["containers"]
        assert container["name"] == "main"
        assert _millicores(container["usage"]["cpu"]) > 50, item  # a quarter core, roughly
        assert _bytes(container["usage"]["memory"]) > 1_000_000, item
    top = env.kubectl("top", "pods", "-n", ns, "--no-headers").stdout
    assert {line.split()[0] for line in top.splitlines()} == {"burn-0", "burn-1"}
    nodes = wait_for(
        lambda: (
            r.body.get("items")
            if (r := env.api.call("GET", "/apis/metrics.k8s.io/v1beta1/nodes")).ok
            and len(r.body.get("items", [])) == 2
            else None
        ),
        60,
        interval=1,
        what="metrics of both nodes",
    )
    for node in nodes:  # a node's usage is its own pod's, not the whole machine's
        assert _millicores(node["usage"]["cpu"]) < 900, json.dumps(nodes)
    env.kubectl("delete", "namespace", ns, "--wait=false")


def _worker_uid(api: Api, index: int) -> str | None:
    resp = api.call("GET", f"/api/v1/namespaces/{NS}/pods/{JOB}-worker-{index}")
    return str(resp.body["metadata"]["uid"]) if resp.ok else None


def test_hpa_scales_a_training_job_up_on_cpu_and_back_down(env: Env) -> None:
    env.kubectl("create", "namespace", NS)
    wait_for(
        lambda: env.api.call("GET", f"/api/v1/namespaces/{NS}/serviceaccounts/default").ok,
        30,
        what="default service account",
    )
    env.kubectl.apply(_job())
    wait_for(lambda: _running_workers(env.api) == 1, 60, interval=0.5, what="worker-0 running")
    first = _worker_uid(env.api, 0)
    env.kubectl.apply(_hpa())
    try:
        wait_for(lambda: _replicas(env.api) == 3, SCALE_UP_S, interval=1, what="HPA scaled to 3")
        wait_for(lambda: _running_workers(env.api) == 3, 60, interval=0.5, what="3 running")
        # The burn ends; once every worker idles, the HPA returns to minReplicas.
        for index in range(3):
            env.kubectl(
                "exec", "-n", NS, f"{JOB}-worker-{index}", "--",
                "python3", "-c", f"open({STOP!r}, 'w').close()",
            )  # fmt: skip
        wait_for(lambda: _replicas(env.api) == 1, SCALE_DOWN_S, interval=1, what="HPA scaled to 1")
        wait_for(lambda: _running_workers(env.api) == 1, 60, interval=0.5, what="1 running")
    except AssertionError:
        hpa = env.kubectl("describe", "hpa", "-n", NS, JOB, check=False)
        log = env.operator.log_path.read_text(errors="replace")[-4000:]
        pytest.fail(f"{hpa.stdout}{hpa.stderr}\n--- operator log (tail) ---\n{log}")
    hpa_status = env.api.call(
        "GET", f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/{JOB}"
    ).body["status"]
    conditions = {c["type"]: c["status"] for c in hpa_status.get("conditions", [])}
    assert conditions.get("ScalingActive") == "True", hpa_status  # it read real metrics
    path = f"/apis/elastrain.dev/v1alpha1/namespaces/{NS}/trainingjobs/{JOB}"

    def running() -> dict[str, Any] | None:
        status = dict(env.api.call("GET", path).body.get("status") or {})
        return status if status.get("phase") == "Running" else None

    # Scaling until the removed workers are gone, then Running at the new count.
    status = wait_for(running, 60, interval=0.5, what="the job Running at 1 worker")
    assert status.get("restartCount", 0) == 0, status
    # Scale-down removes the highest indices: worker-0 is the same pod after the round trip.
    assert _worker_uid(env.api, 0) == first


def _millicores(quantity: str) -> float:
    if quantity.endswith("n"):
        return float(quantity[:-1]) / 1e6
    if quantity.endswith("u"):
        return float(quantity[:-1]) / 1e3
    if quantity.endswith("m"):
        return float(quantity[:-1])
    return float(quantity) * 1000


def _bytes(quantity: str) -> float:
    for suffix, factor in (("Ki", 1024), ("Mi", 1024**2), ("Gi", 1024**3)):
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity)
