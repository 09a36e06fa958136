"""Disruptions under a running job: the pod is recreated, and neither the disruption nor the
restarts it causes in the job's other pods count as restarts."""

from __future__ import annotations

import shlex

import pytest
from cluster_api import Api
from elastrain_sandbox.admin import NodeAdmin
from operator_harness import Cluster, Operator, training_job

pytestmark = pytest.mark.slow


def test_node_removal_recreates_the_pod_without_counting(
    nodes: NodeAdmin, cluster: Cluster, operator: Operator, ns: str
) -> None:
    # backoffLimit 0: a single counted restart would fail the job.
    cluster.apply(ns, training_job("disrupt", "exec sleep 300", run_policy={"backoffLimit": 0}))
    cluster.wait_phase(ns, "disrupt", "Running", operator=operator)
    (pod,) = cluster.pods(ns, "disrupt")
    node, uid = pod["spec"]["nodeName"], pod["metadata"]["uid"]
    nodes.remove_node(node)
    try:
        replacement = cluster.wait(
            lambda: [
                p
                for p in cluster.pods(ns, "disrupt")
                if p["metadata"]["uid"] != uid and (p.get("status") or {}).get("phase") == "Running"
            ],
            "a running replacement pod",
        )
        assert replacement[0]["spec"]["nodeName"] != node
        job = cluster.wait_phase(ns, "disrupt", "Running", operator=operator)
        assert job["status"]["restartCount"] == 0
        # No PodDisrupted assertion: pod GC marks the orphaned pod DisruptionTarget and deletes
        # it at once, so whether a reconcile sees the failed pod (event) or only its absence
        # (a vanished pod, recreated silently) is timing; neither counts, which is the point.
    finally:
        nodes.add_node(node)


# Worker 0 serves a socket, as torchrun's agent on worker 0 serves the rendezvous store; worker
# 1 connects and exits 1 when the connection drops, as the other agents do when worker 0 goes.
# Its container then restarts in place and reconnects to worker 0's replacement.
_SERVE = "import socket; s = socket.create_server(('', 29500)); [c for c in iter(s.accept, None)]"
_FOLLOW = (
    "import os, socket, sys, time\n"
    "deadline = time.monotonic() + 120\n"
    "while True:\n"
    "    try:\n"
    "        c = socket.create_connection((os.environ['MASTER_ADDR'], 29500), timeout=2)\n"
    "        break\n"
    "    except OSError:\n"
    "        if time.monotonic() > deadline: sys.exit(3)\n"
    "        time.sleep(0.5)\n"
    "c.settimeout(None); print('connected', flush=True); c.recv(1); sys.exit(1)\n"
)
_PEERS = (
    f"case $POD_NAME in *-worker-0) exec python3 -c {shlex.quote(_SERVE)};; esac; "
    f"exec python3 -c {shlex.quote(_FOLLOW)}"
)


def test_evicting_worker_0_counts_nothing_not_even_the_restarts_it_causes(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    # backoffLimit 0: a single counted restart would fail the job.
    cluster.apply(ns, training_job("evict", _PEERS, workers=2, run_policy={"backoffLimit": 0}))
    cluster.wait_phase(ns, "evict", "Running", operator=operator)
    cluster.wait(
        lambda: "connected" in cluster.kubectl("logs", "-n", ns, "evict-worker-1").stdout.split(),
        "worker 1 connected to worker 0",
    )

    def restarts_of_worker_1() -> int:
        pod = next(
            p for p in cluster.pods(ns, "evict") if p["metadata"]["name"] == "evict-worker-1"
        )
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        return int(statuses[0].get("restartCount", 0))

    old = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.pods(ns, "evict")}
    # Nothing has restarted before the eviction.
    assert cluster.job(ns, "evict")["status"]["restartCount"] == 0
    assert restarts_of_worker_1() == 0
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "evict-worker-0", "namespace": ns},
    }
    path = f"/api/v1/namespaces/{ns}/pods/evict-worker-0/eviction"
    Api.check(cluster.api.call("POST", path, eviction), "POST", "eviction")

    # The consequence happened: worker 1 lost its peer and restarted in place.
    cluster.wait(lambda: restarts_of_worker_1() >= 1, "worker 1 restarted in place")
    cluster.wait(
        lambda: any(
            p["metadata"]["name"] == "evict-worker-0"
            and p["metadata"]["uid"] != old["evict-worker-0"]
            and (p.get("status") or {}).get("phase") == "Running"
            for p in cluster.pods(ns, "evict")
        ),
        "worker 0 replaced and running",
    )
    job = cluster.wait_phase(ns, "evict", "Running", operator=operator)
    assert job["status"]["restartCount"] == 0
    reasons = {e["reason"] for e in cluster.events(ns, "evict")}
    assert "RestartNotCounted" in reasons
    assert "ContainerRestarted" not in reasons  # the counted kind
