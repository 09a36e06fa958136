"""``helm install`` of charts/elastrain on a real control plane, into a namespace that enforces
the restricted Pod Security Standard; then ``helm upgrade`` and ``helm uninstall``.

With no kubelet registered yet the operator's pod stays Pending, but it exists: the Deployment
controller made a ReplicaSet, the ReplicaSet made the pod, and PodSecurity admitted it (a pod
that violated ``restricted`` would be refused, and the ReplicaSet would report FailedCreate).
"""

from __future__ import annotations

import subprocess

import pytest
from real_control_plane import REPO, Obj, RealCluster
from sandbox_fixtures import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.real]

HELM = REPO / ".tools" / "bin" / "helm"
CHART = REPO / "charts" / "elastrain"
RELEASE = "helmtest"
NS = "helm-restricted"


def _helm(cluster: RealCluster, *args: str) -> str:
    proc = subprocess.run(
        [str(HELM), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _items(cluster: RealCluster, path: str) -> list[Obj]:
    resp = cluster.api.call("GET", path)
    assert resp.status == 200, resp.body
    return list(resp.body["items"])


def _release_objects(cluster: RealCluster) -> dict[str, list[str]]:
    """Every object the release owns, found by Helm's own instance label."""
    selector = f"labelSelector=app.kubernetes.io%2Finstance%3D{RELEASE}"
    paths = {
        "clusterroles": f"/apis/rbac.authorization.k8s.io/v1/clusterroles?{selector}",
        "clusterrolebindings": f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?{selector}",
        "serviceaccounts": f"/api/v1/namespaces/{NS}/serviceaccounts?{selector}",
        "services": f"/api/v1/namespaces/{NS}/services?{selector}",
        "deployments": f"/apis/apps/v1/namespaces/{NS}/deployments?{selector}",
        "pods": f"/api/v1/namespaces/{NS}/pods?{selector}",
    }
    return {
        kind: [o["metadata"]["name"] for o in _items(cluster, path)] for kind, path in paths.items()
    }


def test_helm_install_upgrade_uninstall_in_a_restricted_namespace(
    real_cluster: RealCluster,
) -> None:
    real_cluster.kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": NS,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        }
    )
    _helm(real_cluster, "install", RELEASE, str(CHART), "-n", NS, "--wait=false")
    # The CRD came with the chart (crds/), and the pod was admitted under `restricted`.
    real_cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/trainingjobs.elastrain.dev"
    )
    wait_for(lambda: _release_objects(real_cluster)["pods"], timeout=90, what="the operator pod")
    installed = _release_objects(real_cluster)
    assert all(installed[k] for k in ("clusterroles", "clusterrolebindings", "deployments")), (
        installed
    )
    assert installed["serviceaccounts"] and installed["services"], installed
    events = _items(
        real_cluster, f"/api/v1/namespaces/{NS}/events?fieldSelector=reason%3DFailedCreate"
    )
    assert events == [], [e["message"] for e in events]

    _helm(real_cluster, "upgrade", RELEASE, str(CHART), "-n", NS, "--set", "operator.workers=8")
    deployment = real_cluster.api.call(
        "GET", f"/apis/apps/v1/namespaces/{NS}/deployments/{installed['deployments'][0]}"
    ).body
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--workers=8" in args, args

    _helm(real_cluster, "uninstall", RELEASE, "-n", NS, "--wait")
    wait_for(
        lambda: not any(_release_objects(real_cluster).values()),
        timeout=120,
        what="no object of the release left after helm uninstall",
    )
