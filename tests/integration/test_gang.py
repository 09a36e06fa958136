"""Gang scheduling: with the PodGroup CRD served the operator makes a PodGroup; without, it waits.

Its own module: it installs the PodGroup CRD, which is cluster-wide.
"""

from __future__ import annotations

from typing import Any

import pytest
from operator_harness import Cluster, Operator, condition, training_job

pytestmark = pytest.mark.slow

PODGROUP = "podgroups.scheduling.x-k8s.io"

# The scheduler-plugins PodGroup CRD, reduced to what the API server needs to serve it.
PODGROUP_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: podgroups.scheduling.x-k8s.io}
spec:
  group: scheduling.x-k8s.io
  scope: Namespaced
  names: {kind: PodGroup, plural: podgroups, singular: podgroup, shortNames: [pg]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def gang_job(name: str) -> dict[str, Any]:
    return training_job(
        name, "exec sleep 300", workers=2, run_policy={"schedulingPolicy": {"minAvailable": 2}}
    )


def test_a_gang_job_waits_for_the_podgroup_crd_then_starts(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    if cluster.crd(PODGROUP) is not None:
        pytest.skip(f"this cluster already serves {PODGROUP}: the test starts without it")
    cluster.apply(ns, gang_job("gang"))
    cluster.wait(
        lambda: (
            (condition(cluster.job(ns, "gang"), "Created") or {}).get("reason")
            == "PodGroupCRDMissing"
        ),
        "Created/PodGroupCRDMissing",
    )
    cluster.wait(
        lambda: "PodGroupCRDMissing" in {e["reason"] for e in cluster.events(ns, "gang")},
        "PodGroupCRDMissing warning",
    )
    assert not cluster.pods(ns, "gang")

    # Installing scheduler-plugins' CRD starts the job without touching it (the operator
    # watches that CRD and re-plans at once, not at the 60 s re-check).
    cluster.install(manifest=PODGROUP_CRD)

    def podgroup() -> dict[str, Any] | None:
        found = cluster.items("scheduling.x-k8s.io/v1alpha1", "podgroups", ns)
        return found[0] if found else None

    group = cluster.wait(podgroup, "the job's PodGroup", timeout=30)
    assert group["metadata"]["name"] == "gang"
    assert group["spec"]["minMember"] == 2
    pods = cluster.wait(
        lambda: len(cluster.pods(ns, "gang")) == 2 and cluster.pods(ns, "gang"), "pods", timeout=30
    )
    for pod in pods:
        assert pod["metadata"]["labels"]["scheduling.x-k8s.io/pod-group"] == "gang"
    # The PodGroup is a child like the others: deleting the job removes it.
    cluster.kubectl("delete", "-n", ns, "tj", "gang", "--wait=false")
    cluster.wait(lambda: podgroup() is None and not cluster.pods(ns, "gang"), "children deleted")
