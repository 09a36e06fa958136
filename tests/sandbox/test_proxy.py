"""``pods/proxy`` and ``services/proxy``: kubectl's ``get --raw`` reaches a pod's HTTP server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from elastrain_sandbox.embedded import Sandbox
from sandbox_fixtures import Kubectl, wait_for

NS = "proxy-test"
# A tiny HTTP server that echoes the method, path and query, so forwarding is visible.
SERVER = """
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.dumps({"method": self.command, "path": self.path,
                           "body": self.rfile.read(n).decode()}).encode()
        self.send_response(200 if "missing" not in self.path else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = _answer
http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""


def _web_pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": NS, "labels": {"app": "web"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "c",
                    "image": "python",
                    "command": ["python3", "-c", SERVER, "9090"],
                    "ports": [{"name": "metrics", "containerPort": 9090}],
                    "readinessProbe": {"tcpSocket": {"port": 9090}, "periodSeconds": 1},
                }
            ],
        },
    }


def _ready(sb: Sandbox) -> bool:
    conds = (sb.store.get("pods", "web", NS).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


@pytest.fixture(scope="module")
def k(shared_sandbox: Sandbox) -> Iterator[Kubectl]:
    sb = shared_sandbox
    sb.store.create("namespaces", {"metadata": {"name": NS}})
    sb.store.create("pods", _web_pod(), NS)
    svc = {
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 9090}],
        },
    }
    sb.store.create("services", svc, NS)
    wait_for(lambda: _ready(sb), 30, what="web pod ready")
    kubectl = Kubectl(sb)
    try:
        yield kubectl
    finally:
        kubectl.close()


def test_kubectl_get_raw_through_pod_proxy(k: Kubectl) -> None:
    out = k("get", "--raw", f"/api/v1/namespaces/{NS}/pods/web:9090/proxy/metrics?x=1").stdout
    assert json.loads(out) == {"method": "GET", "path": "/metrics?x=1", "body": ""}


def test_pod_proxy_default_and_named_port(k: Kubectl) -> None:
    for target in ("web", "web:metrics", "http:web:9090"):
        out = k("get", "--raw", f"/api/v1/namespaces/{NS}/pods/{target}/proxy/a/b/").stdout
        assert json.loads(out)["path"] == "/a/b/", target


def test_service_proxy_reaches_a_ready_pod(k: Kubectl) -> None:
    out = k("get", "--raw", f"/api/v1/namespaces/{NS}/services/web:http/proxy/svc").stdout
    assert json.loads(out)["path"] == "/svc"


def _call(sb: Sandbox, method: str, path: str, data: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(sb.url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_pod_proxy_forwards_post_bodies_and_upstream_statuses(k: Kubectl) -> None:
    base = f"/api/v1/namespaces/{NS}/pods/web:9090/proxy"
    code, body = _call(k.sb, "POST", base + "/submit", b"payload")
    assert code == 200 and json.loads(body) == {
        "method": "POST",
        "path": "/submit",
        "body": "payload",
    }
    code, _ = _call(k.sb, "GET", base + "/missing")
    assert code == 404  # the pod's own answer, passed through


def test_pod_proxy_errors_are_status_objects(k: Kubectl) -> None:
    code, body = _call(k.sb, "GET", f"/api/v1/namespaces/{NS}/pods/nope:9090/proxy/")
    assert code == 404 and json.loads(body)["reason"] == "NotFound"
    code, body = _call(k.sb, "GET", f"/api/v1/namespaces/{NS}/pods/web:1/proxy/")
    assert code == 503 and "error trying to reach service" in json.loads(body)["message"]
