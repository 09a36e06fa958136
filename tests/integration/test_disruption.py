"""A node removed under a running job: the pod is recreated and nothing counts as a restart."""

from __future__ import annotations

import pytest
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
