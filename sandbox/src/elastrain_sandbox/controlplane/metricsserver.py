"""metrics-server, the real one (``sigs.k8s.io/metrics-server`` v0.8.0), behind the aggregator.

What a cluster's ``kubectl top`` and HorizontalPodAutoscalers read: metrics-server scrapes each
node's kubelet ``/metrics/resource`` (the node agent serves it, a port per node) and serves
``metrics.k8s.io`` through kube-apiserver's aggregation layer. It is wired as its upstream
manifest wires it, with three differences that this machine forces:

* It runs as a process of the sandbox, not as a pod: it listens on the agent's bridge address
  (the host's end of the pod bridge), which kube-apiserver reaches and which Endpoints accept
  (they refuse loopback).
* Its Service has no selector; an Endpoints object names that address, and kube-apiserver runs
  with ``--enable-aggregator-routing`` (there is no kube-proxy to route a ClusterIP).
* It authenticates with a client certificate of the cluster CA (``CN=system:metrics-server``)
  instead of a ServiceAccount token, to kube-apiserver and to the kubelets alike; RBAC binds
  that user to upstream's roles. Its serving certificate comes from the cluster CA too, so the
  APIService carries a ``caBundle`` rather than upstream's ``insecureSkipTLSVerify``.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from elastrain_sandbox.controlplane.pki import KeyPair, Pki
from elastrain_sandbox.ports import free_port

BINARY = "metrics-server"
NAMESPACE = "kube-system"
NAME = "metrics-server"
USER = "system:metrics-server"
API_SERVICE = "v1beta1.metrics.k8s.io"
# Upstream manifest's resolution (the shortest it accepts is 10 s, and only with a kubelet
# request timeout under 9 s): an HPA sees a new figure every 15 s.
RESOLUTION = "15s"
READY_TIMEOUT = 120.0


def rbac_objects() -> list[dict[str, Any]]:
    """Upstream's RBAC (components.yaml, v0.8.0), bound to the certificate's user."""
    user = [{"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}]
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": USER},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {
                    "apiGroups": [""],
                    "resources": ["pods", "nodes"],
                    "verbs": ["get", "list", "watch"],
                },
            ],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": USER},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": USER,
            },
            "subjects": user,
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "metrics-server:system:auth-delegator"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:auth-delegator",
            },
            "subjects": user,
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": {"name": "metrics-server-auth-reader", "namespace": NAMESPACE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "extension-apiserver-authentication-reader",
            },
            "subjects": user,
        },
    ]


def routing_objects(host: str, port: int, ca_bundle: bytes) -> list[dict[str, Any]]:
    """The Service, its Endpoints at ``host:port``, and the APIService that points at both."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"k8s-app": NAME}},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"k8s-app": NAME}},
            "subsets": [{"addresses": [{"ip": host}], "ports": [{"name": "https", "port": port}]}],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": API_SERVICE, "labels": {"k8s-app": NAME}},
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "service": {"name": NAME, "namespace": NAMESPACE, "port": 443},
                "caBundle": base64.b64encode(ca_bundle).decode(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


_PATHS = {
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "Service": "/api/v1/namespaces/{ns}/services",
    "Endpoints": "/api/v1/namespaces/{ns}/endpoints",
    "APIService": "/apis/apiregistration.k8s.io/v1/apiservices",
}


class AdminApi:
    """Just enough of a client, as the cluster admin, to create objects and read them."""

    def __init__(self, url: str, keys: Pki) -> None:
        self.url = url
        self._context = ssl.create_default_context(cafile=str(keys.ca.cert))
        self._context.load_cert_chain(str(keys.admin.cert), str(keys.admin.key))

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10, context=self._context) as resp:
            return json.loads(resp.read() or b"null")

    def create(self, obj: dict[str, Any]) -> None:
        """POST ``obj``; one that exists already is left as it is (409)."""
        path = _PATHS[obj["kind"]].format(ns=obj["metadata"].get("namespace", ""))
        try:
            self.request("POST", path, obj)
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise


def args(
    *,
    host: str,
    port: int,
    kubeconfig: Path,
    serving: KeyPair,
    client: KeyPair,
    keys: Pki,
) -> list[str]:
    """metrics-server's flags: upstream's, plus what the process-not-pod wiring needs."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={host}",
        f"--secure-port={port}",
        f"--tls-cert-file={serving.cert}",
        f"--tls-private-key-file={serving.key}",
        f"--requestheader-client-ca-file={keys.front_proxy_ca.cert}",
        f"--client-ca-file={keys.ca.cert}",
        "--kubelet-use-node-status-port",
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-certificate-authority={keys.ca.cert}",
        f"--kubelet-client-certificate={client.cert}",
        f"--kubelet-client-key={client.key}",
        f"--metric-resolution={RESOLUTION}",
        "--profiling=false",
    ]


def wait_available(
    api: AdminApi, check: Callable[[], None], deadline_s: float = READY_TIMEOUT
) -> None:
    """Until the APIService is Available and the node metrics list answers; ``check`` raises
    if metrics-server (or anything else) has exited meanwhile."""
    deadline = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < deadline:
        check()
        try:
            svc = api.request("GET", f"/apis/apiregistration.k8s.io/v1/apiservices/{API_SERVICE}")
            conds = {c["type"]: c for c in (svc.get("status") or {}).get("conditions") or []}
            available = conds.get("Available", {})
            if available.get("status") == "True":
                api.request("GET", "/apis/metrics.k8s.io/v1beta1/nodes")
                return
            last = f"{available.get('reason')}: {available.get('message')}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"{API_SERVICE} not available after {deadline_s:.0f}s ({last})")


def port() -> int:
    """A free port for metrics-server's secure port."""
    return free_port()
