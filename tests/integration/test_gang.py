"""Gang scheduling: with the PodGroup CRD served the operator makes a PodGroup; without, it waits.

Its own module: the PodGroup CRD is cluster-wide, and the operator caches whether it is served.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import Cluster, Operator, condition, training_job

pytestmark = pytest.mark.slow

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


def test_without_the_crd_the_job_waits_with_a_warning(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    cluster.apply(ns, gang_job("nogang"))
    job = cluster.wait_phase(ns, "nogang", "Created", operator=operator)
    cluster.wait(
        lambda: (
            (condition(cluster.job(ns, "nogang") or job, "Created") or {}).get("reason")
            == "PodGroupCRDMissing"
        ),
        "Created/PodGroupCRDMissing",
    )
    cluster.wait(
        lambda: "PodGroupCRDMissing" in {e["reason"] for e in cluster.events(ns, "nogang")},
        "PodGroupCRDMissing warning",
    )
    assert not cluster.pods(ns, "nogang")


@pytest.fixture
def gang_operator(cluster: Cluster, tmp_path: Path) -> Iterator[Operator]:
    """An operator started after the PodGroup CRD exists."""
    cluster.kubectl("apply", "-f", "-", input=PODGROUP_CRD)
    cluster.wait(
        lambda: cluster.kubectl("get", "podgroups", "-A", check=False).returncode == 0,
        "PodGroup CRD served",
    )
    op = Operator(cluster.sb.kubeconfig_path, tmp_path / "operator.log").start()
    try:
        yield op
    finally:
        op.kill()


def test_with_the_crd_a_podgroup_gates_the_pods(cluster: Cluster, gang_operator: Operator) -> None:
    ns = cluster.namespace("gang")
    cluster.apply(ns, gang_job("gang"))

    def podgroup() -> dict[str, Any] | None:
        found = cluster.sb.store.list("podgroups.scheduling.x-k8s.io", namespace=ns).items
        return found[0] if found else None

    group = cluster.wait(podgroup, "the job's PodGroup")
    assert group["metadata"]["name"] == "gang"
    assert group["spec"]["minMember"] == 2
    pods = cluster.wait(
        lambda: len(cluster.pods(ns, "gang")) == 2 and cluster.pods(ns, "gang"), "pods"
    )
    for pod in pods:
        assert pod["metadata"]["labels"]["scheduling.x-k8s.io/pod-group"] == "gang"
    # The PodGroup is a child like the others: deleting the job removes it.
    cluster.kubectl("delete", "-n", ns, "tj", "gang", "--wait=false")
    cluster.wait(lambda: podgroup() is None and not cluster.pods(ns, "gang"), "children deleted")
