"""The operator's identity as the Helm chart gives it: its ServiceAccount and RBAC, rendered by
``helm template`` from charts/elastrain, applied to a cluster, and a kubeconfig carrying a token
for that ServiceAccount, minted by the cluster's TokenRequest API.

An operator run with that kubeconfig can do exactly what the chart allows, no more: on a cluster
that enforces RBAC (the real control plane), a verb the code uses and the chart lacks fails
the tests with a 403 instead of failing a user's install.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from cluster_api import Api

REPO = Path(__file__).resolve().parent.parent
HELM = REPO / ".tools" / "bin" / "helm"
CHART = REPO / "charts" / "elastrain"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
Obj = dict[str, Any]


def render(release: str, namespace: str, *helm_args: str) -> list[Obj]:
    """Every object ``helm template`` renders for the chart (``helm_args``: ``--set ...``)."""
    out = subprocess.run(
        [str(HELM), "template", release, str(CHART), "-n", namespace, *helm_args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def install_identity(
    api: Api,
    admin_kubeconfig: Path,
    out: Path,
    *,
    release: str = "elastrain",
    namespace: str = "elastrain-system",
    helm_args: tuple[str, ...] = (),
) -> Path:
    """Apply the chart's ServiceAccount and RBAC; write to ``out`` a kubeconfig for it."""
    docs = render(release, namespace, *helm_args)
    rbac = [d for d in docs if d["kind"] in RBAC_KINDS]
    ns_body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    created = api.call("POST", "/api/v1/namespaces", ns_body)
    assert created.status in (201, 409), created.body
    for doc in rbac:
        path = _collection(doc, namespace)
        resp = api.call("POST", path, doc)
        if resp.status == 409:
            resp = api.call("PUT", f"{path}/{doc['metadata']['name']}", doc)
        assert resp.status in (200, 201), resp.body
    account = next(d["metadata"]["name"] for d in rbac if d["kind"] == "ServiceAccount")
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    token_path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
    resp = api.call("POST", token_path, request)
    assert resp.status == 201, resp.body
    token = resp.body["status"]["token"]
    config = yaml.safe_load(admin_kubeconfig.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    out.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "cluster", "cluster": cluster["cluster"]}],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": "chart", "context": {"cluster": "cluster", "user": account}}],
                "current-context": "chart",
            }
        )
    )
    out.chmod(0o600)
    return out


def _collection(doc: Obj, namespace: str) -> str:
    kind = doc["kind"]
    if kind == "ServiceAccount":
        return f"/api/v1/namespaces/{doc['metadata'].get('namespace', namespace)}/serviceaccounts"
    plural = {
        "ClusterRole": "clusterroles",
        "ClusterRoleBinding": "clusterrolebindings",
        "Role": "roles",
        "RoleBinding": "rolebindings",
    }[kind]
    base = "/apis/rbac.authorization.k8s.io/v1"
    if kind.startswith("Cluster"):
        return f"{base}/{plural}"
    return f"{base}/namespaces/{doc['metadata'].get('namespace', namespace)}/{plural}"
