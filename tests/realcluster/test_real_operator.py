"""The operator on a real control plane, under the chart's own RBAC, in a namespace that
enforces the restricted Pod Security Standard; and the real garbage collector.

The operator runs as the chart's ServiceAccount (a token minted by the real API server), not
as admin, so every call it makes is authorised by the ClusterRole the chart renders: a verb
missing there fails this test with a 403 in the operator's log. The real kube-scheduler finds
no node here (no kubelet yet), so pods stay Pending; what is shown is creation, admission,
status, and cleanup by kube-controller-manager's garbage collector.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import chart_rbac
import pytest
import yaml
from real_control_plane import REPO, Obj, RealCluster

sys.path.insert(0, str(REPO / "tests" / "integration"))
from operator_harness import Operator
from sandbox_fixtures import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.real]

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def _namespace(cluster: RealCluster, name: str, labels: dict[str, str] | None = None) -> None:
    cluster.kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        }
    )


@pytest.fixture(scope="module")
def chart_operator(
    real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """The operator process, authenticated as the chart's ServiceAccount with the chart's RBAC."""
    real_cluster.kubectl("apply", "-f", str(REPO / "crds"))
    root = tmp_path_factory.mktemp("chart-operator")
    kubeconfig = chart_rbac.install_identity(
        real_cluster.api, real_cluster.kubeconfig, root / "kubeconfig"
    )
    op = Operator(kubeconfig, root / "operator.log").start()
    try:
        yield op
    finally:
        op.kill()


def _job_manifest(name: str) -> Obj:
    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "ddp.yaml").read_text()) if d]
    job = next(d for d in docs if d["kind"] == "TrainingJob")
    job["metadata"]["name"] = name
    # No PersistentVolumeClaim here: the pods stay Pending anyway, and admission is the point.
    spec = job["spec"]["replicaSpecs"]["worker"]["template"]["spec"]
    spec["volumes"] = [{"name": "ckpt", "emptyDir": {}}]
    return job


def _get(cluster: RealCluster, path: str) -> Obj:
    resp = cluster.api.call("GET", path)
    assert resp.status == 200, resp.body
    return resp.body


def test_operator_under_chart_rbac_creates_admitted_pods_and_gc_removes_them(
    real_cluster: RealCluster, chart_operator: Operator
) -> None:
    ns = "restricted-jobs"
    _namespace(real_cluster, ns, RESTRICTED)
    # The namespace really enforces: a privileged pod is refused (the check can fail).
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    refused = real_cluster.api.call(
        "POST", f"/api/v1/namespaces/{ns}/pods", privileged, query={"dryRun": "All"}
    )
    assert refused.status == 403 and "violates PodSecurity" in refused.message, refused.body

    job = _job_manifest("ddp")
    job["metadata"]["namespace"] = ns
    real_cluster.kubectl.apply(job)
    pods_path = f"/api/v1/namespaces/{ns}/pods?labelSelector=elastrain.dev%2Fjob-name%3Dddp"

    def pods() -> list[Obj]:
        return list(_get(real_cluster, pods_path)["items"])

    wait_for(lambda: len(pods()) == 2, timeout=60, what="2 worker pods created by the operator")
    names = sorted(p["metadata"]["name"] for p in pods())
    assert names == ["ddp-worker-0", "ddp-worker-1"]
    service = real_cluster.api.call("GET", f"/api/v1/namespaces/{ns}/services/ddp")
    assert service.status == 200 and service.body["spec"]["clusterIP"] == "None", service.body

    def created() -> bool:
        job = _get(real_cluster, f"/apis/elastrain.dev/v1alpha1/namespaces/{ns}/trainingjobs/ddp")
        conditions = (job.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Created" and c["status"] == "True" for c in conditions)

    wait_for(created, timeout=60, what="status condition Created written by the operator")
    log = chart_operator.log_tail(400)
    assert "403" not in log and "Forbidden" not in log, log

    # The operator's pods are owned by the job: the real garbage collector removes them.
    real_cluster.kubectl("delete", "trainingjob", "ddp", "-n", ns, "--wait=false")
    wait_for(lambda: not pods(), timeout=90, what="garbage collection of the job's pods")
    wait_for(
        lambda: real_cluster.api.call("GET", f"/api/v1/namespaces/{ns}/services/ddp").status == 404,
        timeout=90,
        what="garbage collection of the job's Service",
    )
