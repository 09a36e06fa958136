"""The node agent as the kubelet of the real control plane (``elastrain_sandbox.RealCluster``).

The real kube-scheduler binds pods to the agent's nodes, the agent runs them and writes
``pods/status``, ``kubectl logs`` goes through kube-apiserver to the agent's kubelet API, a
graceful ``kubectl delete`` ends in the agent's final delete, the node lifecycle controller
reads the agent's Leases, and the operator runs a TrainingJob to Succeeded.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from elastrain_sandbox.agent.backoff import BackoffPolicy
from elastrain_sandbox.agent.container import processes_with_marker
from elastrain_sandbox.realcluster import RealCluster
from real_control_plane import REPO, Kubectl, Obj, bin_dir

sys.path.insert(0, str(REPO / "tests" / "integration"))
from operator_harness import Operator, training_job
from sandbox_fixtures import ROOT_MARKS, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.real, *ROOT_MARKS]

CRD = REPO / "crds" / "trainingjobs.elastrain.dev.yaml"


@dataclass
class Response:
    status: int
    body: Obj


class Api:
    """HTTPS with the admin certificate (this module's own: the shared test client is being
    reworked, and these tests need only GET and a watch stream)."""

    def __init__(self, cluster: RealCluster) -> None:
        keys = cluster.keys
        assert keys is not None
        self.base = cluster.url
        self.context = ssl.create_default_context(cafile=str(keys.ca.cert))
        self.context.load_cert_chain(str(keys.admin.cert), str(keys.admin.key))

    def call(self, method: str, path: str) -> Response:
        request = urllib.request.Request(self.base + path, method=method)
        request.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60, context=self.context) as resp:
                return Response(resp.status, json.loads(resp.read() or b"{}"))
        except urllib.error.HTTPError as err:
            return Response(err.code, json.loads(err.read() or b"{}"))


class Nodes:
    def __init__(self, cluster: RealCluster, root: Path) -> None:
        self.cluster = cluster
        self.root = root
        self.api = Api(cluster)
        self.kubectl = Kubectl(cluster.kubeconfig_path)

    def namespace(self) -> str:
        name = f"n-{uuid.uuid4().hex[:6]}"
        self.kubectl("create", "namespace", name)
        path = f"/api/v1/namespaces/{name}/serviceaccounts/default"
        wait_for(lambda: self.api.call("GET", path).status == 200, 30, what="default SA")
        return name

    def pod(self, ns: str, name: str) -> Obj | None:
        resp = self.api.call("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
        return resp.body if resp.status == 200 else None

    def node(self, name: str) -> Obj:
        return self.api.call("GET", f"/api/v1/nodes/{name}").body

    def phase(self, ns: str, name: str) -> str | None:
        return ((self.pod(ns, name) or {}).get("status") or {}).get("phase")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    root = tmp_path_factory.mktemp("real-nodes")
    cluster = RealCluster(
        root / "state",
        root / "admin.kubeconfig",
        bin_dir(),
        nodes=2,
        agent_options={"backoff": BackoffPolicy(0.3, 1.2, 60), "shutdown_grace": 1.0},
        node_monitor_grace_period=8,
    )
    cluster.start()
    try:
        yield Nodes(cluster, root)
    finally:
        cluster.stop()


def _ready(node: Obj) -> str | None:
    conds = (node.get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conds if c["type"] == "Ready"), None)


def _watch_phases(api: Api, ns: str, name: str, phases: list[str]) -> threading.Thread:
    """Record every phase the pod shows, from a watch opened before it exists."""
    query = urllib.parse.urlencode(
        {"watch": "1", "fieldSelector": f"metadata.name={name}", "timeoutSeconds": "60"}
    )
    request = urllib.request.Request(f"{api.base}/api/v1/namespaces/{ns}/pods?{query}")
    opened = threading.Event()

    def follow() -> None:
        with urllib.request.urlopen(request, timeout=90, context=api.context) as resp:
            opened.set()
            for line in resp:
                phase = (json.loads(line)["object"].get("status") or {}).get("phase")
                if phase and (not phases or phases[-1] != phase):
                    phases.append(phase)
                if phase in ("Succeeded", "Failed"):
                    return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    assert opened.wait(30), "watch did not open"
    return thread


def test_nodes_are_ready_with_leases_that_renew(nodes: Nodes) -> None:
    agent = nodes.cluster.agent
    assert agent is not None
    for name in ("node-0", "node-1"):
        node = nodes.node(name)
        assert _ready(node) == "True"
        addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
        assert addresses == {"InternalIP": agent.host_ip, "Hostname": name}
        assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
        assert node["status"]["capacity"]["cpu"] == "8"
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
        first = nodes.api.call("GET", path).body["spec"]["renewTime"]

        def renewed(path: str = path, first: str = first) -> bool:
            return bool(nodes.api.call("GET", path).body["spec"]["renewTime"] != first)

        wait_for(renewed, 30, what=f"lease of {name} renewed")


def test_plain_pod_runs_reports_and_logs(nodes: Nodes) -> None:
    ns = nodes.namespace()
    phases: list[str] = []
    watcher = _watch_phases(nodes.api, ns, "hello", phases)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hello", "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hello; sleep 1"]}
            ],
        },
    }
    nodes.kubectl.apply(pod)
    wait_for(lambda: nodes.phase(ns, "hello") == "Succeeded", 60, what="hello Succeeded")
    watcher.join(30)
    assert phases[-2:] == ["Running", "Succeeded"], phases
    got = nodes.pod(ns, "hello")
    assert got is not None
    assert got["spec"]["nodeName"] in ("node-0", "node-1")  # the real kube-scheduler's choice
    status = got["status"]
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert status["hostIP"] == nodes.cluster.agent.host_ip  # type: ignore[union-attr]
    assert {c["type"] for c in status["conditions"]} >= {"PodScheduled", "Ready", "Initialized"}
    logs = nodes.kubectl("logs", "-n", ns, "hello")
    assert logs.stdout == "hello\n"
    tail = nodes.kubectl("logs", "-n", ns, "hello", "--tail=1")
    assert tail.stdout == "hello\n"


def test_kubectl_delete_is_graceful(nodes: Nodes) -> None:
    ns = nodes.namespace()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sleeper", "namespace": ns},
        "spec": {
            "terminationGracePeriodSeconds": 10,
            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "300"]}],
        },
    }
    nodes.kubectl.apply(pod)
    wait_for(lambda: nodes.phase(ns, "sleeper") == "Running", 60, what="sleeper Running")
    running = nodes.pod(ns, "sleeper")
    assert running is not None
    marker = running["status"]["containerStatuses"][0]["containerID"].removeprefix("sandbox://")
    assert processes_with_marker(marker)
    nodes.kubectl("delete", "pod", "-n", ns, "sleeper", "--wait=true", "--timeout=60s")
    assert nodes.pod(ns, "sleeper") is None
    wait_for(lambda: not processes_with_marker(marker), 10, what="sleeper's processes gone")


def test_kubectl_exec_reaches_the_container_through_the_kubelet_api(nodes: Nodes) -> None:
    """kube-apiserver proxies kubectl's WebSocket exec to the agent's kubelet API (the Nodes
    declare ExtendWebSocketsToKubelet): stdin in, stdout out, the exit code back."""
    ns = nodes.namespace()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "shell", "namespace": ns},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sleep", "300"],
                    "env": [{"name": "GREETING", "value": "from-the-pod"}],
                }
            ],
        },
    }
    nodes.kubectl.apply(pod)
    wait_for(lambda: nodes.phase(ns, "shell") == "Running", 60, what="shell Running")
    out = nodes.kubectl("exec", "-n", ns, "shell", "--", "sh", "-c", "echo $GREETING; hostname")
    assert out.stdout.split() == ["from-the-pod", "shell"]
    piped = nodes.kubectl("exec", "-i", "-n", ns, "shell", "--", "cat", stdin="typed\n")
    assert piped.stdout == "typed\n"
    failed = nodes.kubectl("exec", "-n", ns, "shell", "--", "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3, failed.stderr
    nodes.kubectl("delete", "pod", "-n", ns, "shell", "--wait=true", "--timeout=60s")


def test_partition_makes_the_node_not_ready_and_back(nodes: Nodes) -> None:
    agent = nodes.cluster.agent
    assert agent is not None
    nodes.cluster.set_node_ready("node-1", False)
    assert agent.node_reachable("node-1") is False
    wait_for(lambda: _ready(nodes.node("node-1")) != "True", 60, what="node-1 NotReady")
    assert _ready(nodes.node("node-0")) == "True"
    nodes.cluster.set_node_ready("node-1", True)
    wait_for(lambda: _ready(nodes.node("node-1")) == "True", 60, what="node-1 Ready again")
    wait_for(lambda: agent.node_reachable("node-1"), 30, what="agent acts for node-1 again")


def test_added_and_removed_node(nodes: Nodes) -> None:
    nodes.cluster.add_node("node-extra", cpus=2)
    node = nodes.node("node-extra")
    assert node["status"]["capacity"]["cpu"] == "2"
    wait_for(lambda: _ready(nodes.node("node-extra")) == "True", 30, what="node-extra Ready")
    nodes.cluster.remove_node("node-extra")
    gone = nodes.api.call("GET", "/api/v1/nodes/node-extra").status
    assert gone == 404


def test_training_job_end_to_end(nodes: Nodes) -> None:
    nodes.kubectl("apply", "-f", str(CRD))
    # kubectl wait errors out (instead of waiting) while the new CRD has no conditions yet.
    wait_for(
        lambda: (
            nodes.kubectl(
                "wait", "--for=condition=Established", "crd/trainingjobs.elastrain.dev", check=False
            ).returncode
            == 0
        ),
        60,
        interval=0.5,
        what="the CRD Established",
    )
    ns = nodes.namespace()
    operator = Operator(nodes.cluster.kubeconfig_path, nodes.root / "operator.log").start()
    try:
        job = training_job("e2e", "exit 0", workers=2)
        job["metadata"]["namespace"] = ns
        nodes.kubectl.apply(job)
        path = f"/apis/elastrain.dev/v1alpha1/namespaces/{ns}/trainingjobs/e2e"

        def phase() -> Any:
            return (nodes.api.call("GET", path).body.get("status") or {}).get("phase")

        try:
            wait_for(lambda: phase() == "Succeeded", 120, what="TrainingJob Succeeded")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\noperator log:\n{operator.log_tail()}") from exc
        pods = nodes.api.call("GET", f"/api/v1/namespaces/{ns}/pods").body["items"]
        workers = [p for p in pods if p["metadata"]["name"].startswith("e2e-worker-")]
        assert len(workers) == 2
        for pod in workers:
            assert pod["status"]["phase"] == "Succeeded"
            assert pod["spec"]["nodeName"] in ("node-0", "node-1")
    finally:
        operator.terminate()


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_cli_runs_the_real_cluster_with_nodes_and_stops_clean(tmp_path: Path) -> None:
    state = tmp_path / "cli-state"
    kubeconfig = tmp_path / "cli.kubeconfig"
    env = {**os.environ, "ELASTRAIN_CONTROL_PLANE_BIN": str(bin_dir())}
    argv = [sys.executable, "-m", "elastrain_sandbox", "--control-plane", "real"]
    argv += ["--nodes", "1", "--gpus-per-node", "2", "--kubeconfig", str(kubeconfig)]
    argv += ["--state-dir", str(state)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        lines = []
        for raw in proc.stdout:
            lines.append(raw.decode(errors="replace"))
            if raw.startswith(b"sandbox ready: https://"):
                break
        assert lines and lines[-1].startswith("sandbox ready: "), "".join(lines[-30:])
        kubectl = Kubectl(kubeconfig)
        node = json.loads(kubectl("get", "node", "node-0", "-o", "json").stdout)
        assert node["status"]["capacity"]["nvidia.com/gpu"] == "2"
        assert _ready(node) == "True"
        assert _processes_mentioning(str(state))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0
        assert _processes_mentioning(str(state)) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
