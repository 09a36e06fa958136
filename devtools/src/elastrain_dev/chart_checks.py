"""Checks on a rendered Helm chart that schema validation alone cannot make.

``kubernetes_validate`` proves each manifest is well-formed; these prove the manifests fit
together (every binding's role and service account exist, the metrics Service selects the
operator's pods, probes name real ports), that the operator pod is hardened, and that custom
resources match the CRDs rendered beside them. Each returns messages; empty means fine.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ClusterKopfPeering",
    "Namespace",
}


def describe(doc: Obj) -> str:
    """``Kind ns/name`` for messages."""
    meta = doc.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{doc.get('kind')} {where}{meta.get('name')}"


def _index(docs: list[Obj]) -> set[tuple[str, str | None, str]]:
    return {
        (d["kind"], (d.get("metadata") or {}).get("namespace"), d["metadata"]["name"]) for d in docs
    }


def check_namespaces(docs: list[Obj]) -> list[str]:
    """Namespaced objects carry their namespace, so ``kubectl apply`` of the render is safe."""
    return [
        f"{describe(d)}: namespaced object without metadata.namespace"
        for d in docs
        if d["kind"] not in CLUSTER_SCOPED and not (d.get("metadata") or {}).get("namespace")
    ]


def check_references(docs: list[Obj], *, expect_service_account: bool) -> list[str]:
    """Bindings point at rendered roles and service accounts; pods at their service account."""
    index = _index(docs)
    errors = []
    for d in docs:
        if d["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        ns = d["metadata"].get("namespace")
        ref = d["roleRef"]
        role_ns = ns if ref["kind"] == "Role" else None
        if (ref["kind"], role_ns, ref["name"]) not in index:
            errors.append(f"{describe(d)}: roleRef {ref['kind']} {ref['name']} is not rendered")
        for subject in d.get("subjects", []):
            key = ("ServiceAccount", subject.get("namespace"), subject["name"])
            if expect_service_account and key not in index:
                errors.append(f"{describe(d)}: subject {subject['name']} is not rendered")
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        sa = d["spec"]["template"]["spec"].get("serviceAccountName")
        key = ("ServiceAccount", d["metadata"].get("namespace"), sa)
        if not sa or (expect_service_account and key not in index):
            errors.append(f"{describe(d)}: serviceAccountName {sa!r} is not rendered")
    return errors


def _labels_match(selector: Obj, labels: Obj) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_deployment(deploy: Obj) -> list[str]:
    """Hardened security context, probe ports that exist, selector that matches the pods."""
    errors = []
    where = describe(deploy)
    template = deploy["spec"]["template"]
    if not _labels_match(deploy["spec"]["selector"]["matchLabels"], template["metadata"]["labels"]):
        errors.append(f"{where}: selector does not match the pod labels")
    pod = template["spec"]
    pod_sc = pod.get("securityContext") or {}
    if pod_sc.get("runAsNonRoot") is not True:
        errors.append(f"{where}: pod securityContext.runAsNonRoot must be true")
    if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        errors.append(f"{where}: pod seccompProfile must be RuntimeDefault")
    for container in pod["containers"]:
        cname = f"{where} container {container['name']}"
        sc = container.get("securityContext") or {}
        required = {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        }
        for key, value in required.items():
            if sc.get(key) is not value:
                errors.append(f"{cname}: securityContext.{key} must be {value}")
        if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
            errors.append(f"{cname}: securityContext.capabilities.drop must be [ALL]")
        ports = {p.get("name") for p in container.get("ports", [])}
        probe = (container.get("livenessProbe") or {}).get("httpGet") or {}
        if probe.get("path") != "/healthz" or probe.get("port") not in ports:
            errors.append(f"{cname}: livenessProbe must GET /healthz on a named container port")
    return errors


def check_services(docs: list[Obj]) -> list[str]:
    """Every Service selects some rendered pod template and targets one of its ports."""
    templates = [d["spec"]["template"] for d in docs if d["kind"] == "Deployment"]
    errors = []
    for svc in (d for d in docs if d["kind"] == "Service"):
        pods = [
            t
            for t in templates
            if _labels_match(svc["spec"].get("selector", {}), t["metadata"]["labels"])
        ]
        if not pods:
            errors.append(f"{describe(svc)}: selector matches no rendered pod template")
            continue
        names = {
            p.get("name") for t in pods for c in t["spec"]["containers"] for p in c.get("ports", [])
        }
        for port in svc["spec"]["ports"]:
            if isinstance(port.get("targetPort"), str) and port["targetPort"] not in names:
                errors.append(f"{describe(svc)}: targetPort {port['targetPort']} is not a pod port")
    return errors


def check_service_monitors(docs: list[Obj]) -> list[str]:
    """Every ServiceMonitor selects a rendered Service and scrapes one of its named ports.

    Its CRD belongs to the Prometheus Operator, so no schema is at hand; this is what can
    still go wrong inside the chart.
    """
    services = [d for d in docs if d["kind"] == "Service"]
    errors = []
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        selector = monitor["spec"].get("selector", {}).get("matchLabels", {})
        matched = [s for s in services if _labels_match(selector, s["metadata"].get("labels", {}))]
        if not matched:
            errors.append(f"{describe(monitor)}: selector matches no rendered Service")
            continue
        ports = {p.get("name") for s in matched for p in s["spec"]["ports"]}
        for endpoint in monitor["spec"].get("endpoints", []):
            if endpoint.get("port") not in ports:
                errors.append(f"{describe(monitor)}: port {endpoint.get('port')} is not served")
    return errors
