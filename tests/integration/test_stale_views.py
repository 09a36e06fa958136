"""Stale views: what the operator's watches miss while they are down must not stay missed.

The operator talks to the cluster through the fault proxy (``fault_proxy_harness``), which
cuts every watch at the test's command and, once released, answers with 410 Gone: kopf must
re-list. A re-list shows what exists, but not what was deleted meanwhile, and kopf's indexes
drop an object only on its ``DELETED`` event (``elastrain.controller.relist``). Found by the
API-fault churn (``tests/reliability/test_api_faults.py``): jobs stayed short of pods forever.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_proxy_harness import proxied
from operator_harness import Cluster, Operator, training_job

pytestmark = pytest.mark.slow


def test_a_pod_deleted_while_the_watches_were_down_is_replaced(
    cluster: Cluster, tmp_path: Path
) -> None:
    with proxied(cluster.operator_kubeconfig, tmp_path / "proxied.kubeconfig") as proxy:
        operator = Operator(proxy.kubeconfig, tmp_path / "operator.log").start()
        try:
            ns = cluster.namespace("stale-views")
            cluster.apply(ns, training_job("ghost", "exec sleep 600", workers=2))
            cluster.wait_phase(ns, "ghost", "Running", operator=operator)
            victim = next(
                p for p in cluster.pods(ns, "ghost") if p["metadata"]["name"] == "ghost-worker-1"
            )
            uid = victim["metadata"]["uid"]

            assert proxy.hold_watches() >= 3, "the watches of jobs, pods and Services"
            # The operator has noticed the cut and asks again: from now on it sees nothing.
            cluster.wait(lambda: proxy.waiting() >= 3, "the operator's watches to reconnect")
            resp = cluster.api.call(
                "DELETE", f"/api/v1/namespaces/{ns}/pods/ghost-worker-1", {"gracePeriodSeconds": 0}
            )
            assert resp.status in (200, 202), resp.body
            path = f"/api/v1/namespaces/{ns}/pods/ghost-worker-1"

            def gone() -> bool:  # not merely terminating: removed, so that only DELETED tells
                resp = cluster.api.call("GET", path)
                return resp.status == 404 or resp.body["metadata"]["uid"] != uid

            cluster.wait(gone, "the pod to be removed from the API server")
            proxy.release_watches()  # 410 Gone: the operator re-lists without the deleted pod

            def replaced() -> bool:
                return any(
                    p["metadata"]["name"] == "ghost-worker-1" and p["metadata"]["uid"] != uid
                    for p in cluster.pods(ns, "ghost")
                )

            cluster.wait(replaced, "a new ghost-worker-1", timeout=60)
            metrics = operator.metrics()
            ghosts = metrics.get(("elastrain_index_ghosts_total", frozenset({("kind", "Pod")})))
            assert ghosts is not None and ghosts >= 1, operator.log_tail()
            job = cluster.wait_phase(ns, "ghost", "Running", operator=operator)
            assert job["status"]["replicaStatuses"]["worker"]["active"] == 2
        finally:
            operator.kill()
