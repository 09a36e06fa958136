"""The operator as a pod of the Helm chart, on the real control plane with the node agent.

``helm install`` of charts/elastrain into a namespace enforcing the restricted Pod Security
Standard; the agent runs the operator image with the project's Python, the pod reaches
kube-apiserver through the agent's relay as its ServiceAccount (a TokenRequest token bound to
the pod), its liveness probe passes and it takes a TrainingJob applied with kubectl to
Succeeded. ``helm upgrade`` rolls it; ``helm uninstall`` leaves no object and no process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_api import Api
from elastrain_sandbox.agent.backoff import BackoffPolicy
from elastrain_sandbox.agent.container import processes_with_marker
from elastrain_sandbox.realcluster import RealCluster
from real_control_plane import REPO, Kubectl, Obj, bin_dir

sys.path.insert(0, str(REPO / "tests" / "integration"))
from operator_harness import training_job
from sandbox_fixtures import ROOT_MARKS, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.real, *ROOT_MARKS]

HELM = REPO / ".tools" / "bin" / "helm"
CHART = REPO / "charts" / "elastrain"
RELEASE = "elastrain"
NS = "elastrain-system"
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"
# From a pod: who am I (SelfSubjectReview needs no RBAC) and can I list pods (no RBAC: 403).
WHOAMI = """
import json, os, ssl, urllib.request, urllib.error
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
token = open(sa + "/token").read()
ns = open(sa + "/namespace").read()
def call(method, path, body=None):
    req = urllib.request.Request(f"https://{host}:{port}{path}", method=method,
        data=json.dumps(body).encode() if body else None,
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
status, me = call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", review)
listed, _ = call("GET", f"/api/v1/namespaces/{ns}/pods")
print(json.dumps({"host": host, "port": port, "status": status, "listed": listed,
                  "user": me.get("status", {}).get("userInfo", {})}))
"""


class Chart:
    def __init__(self, cluster: RealCluster, root: Path) -> None:
        self.cluster = cluster
        self.root = root
        self.api = Api(cluster)
        self.kubectl = Kubectl(cluster.kubeconfig_path)

    def helm(self, *args: str) -> str:
        proc = subprocess.run(
            [str(HELM), "--kubeconfig", str(self.cluster.kubeconfig_path), *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def operator_pods(self) -> list[Obj]:
        return self.api.items(f"/api/v1/namespaces/{NS}/pods", labelSelector=SELECTOR)

    def ready_pod(self, exclude: frozenset[str] = frozenset()) -> Obj | None:
        """The one operator pod, Ready, not being deleted, not one of ``exclude`` (uids)."""
        pods = [p for p in self.operator_pods() if p["metadata"]["uid"] not in exclude]
        if len(pods) != 1 or pods[0]["metadata"].get("deletionTimestamp"):
            return None
        conditions = (pods[0].get("status") or {}).get("conditions") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        return pods[0] if ready else None

    def release_objects(self) -> dict[str, list[str]]:
        """Every object of the release, found by Helm's instance label."""
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        paths = {
            "clusterroles": f"{rbac}/clusterroles",
            "clusterrolebindings": f"{rbac}/clusterrolebindings",
            "serviceaccounts": f"/api/v1/namespaces/{NS}/serviceaccounts",
            "services": f"/api/v1/namespaces/{NS}/services",
            "deployments": f"/apis/apps/v1/namespaces/{NS}/deployments",
            "replicasets": f"/apis/apps/v1/namespaces/{NS}/replicasets",
            "pods": f"/api/v1/namespaces/{NS}/pods",
        }
        return {
            kind: [o["metadata"]["name"] for o in self.api.items(path, labelSelector=SELECTOR)]
            for kind, path in paths.items()
        }


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chart]:
    root = tmp_path_factory.mktemp("real-chart")
    cluster = RealCluster(
        root / "state",
        root / "admin.kubeconfig",
        bin_dir(),
        nodes=2,
        agent_options={"backoff": BackoffPolicy(0.3, 1.2, 60), "shutdown_grace": 1.0},
    )
    cluster.start()
    try:
        yield Chart(cluster, root)
    finally:
        cluster.stop()


def _marker(pod: Obj) -> str:
    return str(pod["status"]["containerStatuses"][0]["containerID"]).removeprefix("sandbox://")


def _namespace(chart: Chart, labels: dict[str, str] | None = None) -> str:
    name = f"c-{uuid.uuid4().hex[:6]}"
    meta: Obj = {"name": name, "labels": labels or {}}
    chart.kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    path = f"/api/v1/namespaces/{name}/serviceaccounts/default"
    wait_for(lambda: chart.api.get(path), 30, interval=0.2, what="the default ServiceAccount")
    return name


def test_a_pod_reaches_the_api_as_its_service_account(chart: Chart) -> None:
    ns = _namespace(chart)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "whoami", "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "python", "command": ["python3", "-c"]}],
        },
    }
    pod["spec"]["containers"][0]["args"] = [WHOAMI]  # type: ignore[index]
    chart.kubectl.apply(pod)
    path = f"/api/v1/namespaces/{ns}/pods/whoami"

    def phase() -> str | None:
        return ((chart.api.get(path) or {}).get("status") or {}).get("phase")

    wait_for(lambda: phase() in ("Succeeded", "Failed"), 60, interval=0.2, what="whoami done")
    logs = chart.kubectl("logs", "-n", ns, "whoami").stdout
    assert phase() == "Succeeded", logs
    seen = json.loads(logs.strip().splitlines()[-1])
    agent = chart.cluster.agent
    assert agent is not None and agent.service is not None
    assert seen["host"] == "kubernetes.default.svc"
    assert seen["port"] == str(agent.service.port)
    assert seen["status"] == 201, seen
    user = seen["user"]
    assert user["username"] == f"system:serviceaccount:{ns}:default"
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["whoami"]
    assert seen["listed"] == 403  # authenticated, and no RBAC grants it


def test_helm_chart_runs_the_operator_through_upgrade_and_uninstall(chart: Chart) -> None:
    restricted = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    meta = {"name": NS, "labels": restricted}
    chart.kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    chart.helm("install", RELEASE, str(CHART), "-n", NS, "--create-namespace")
    first = wait_for(chart.ready_pod, 120, interval=0.3, what="the operator pod Ready")
    markers = [_marker(first)]
    assert processes_with_marker(markers[0])
    # What the liveness probe asks (the chart's httpGet on the health port). Ready came first:
    # the chart has no readiness probe, so the pod is Ready once its container runs.
    health = f"http://{first['status']['podIP']}:8081/healthz"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(health, timeout=10) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    wait_for(healthy, 60, interval=0.3, what="the operator's /healthz from the host")

    ns = _namespace(chart)
    job = training_job("chart-e2e", "exit 0", workers=2)
    job["metadata"]["namespace"] = ns
    chart.kubectl.apply(job)
    path = f"/apis/elastrain.dev/v1alpha1/namespaces/{ns}/trainingjobs/chart-e2e"
    operator = first["metadata"]["name"]

    def job_phase() -> str | None:
        return ((chart.api.get(path) or {}).get("status") or {}).get("phase")

    try:
        wait_for(lambda: job_phase() == "Succeeded", 120, interval=0.3, what="job Succeeded")
    except AssertionError as exc:
        log = chart.kubectl("logs", "-n", NS, operator, check=False)
        raise AssertionError(f"{exc}\noperator log:\n{log.stdout[-4000:]}") from exc
    log = chart.kubectl("logs", "-n", NS, operator).stdout
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert lines, log[-2000:]  # --log-format=json, through kubectl logs
    assert "Forbidden" not in log, log[-4000:]

    chart.helm("upgrade", RELEASE, str(CHART), "-n", NS, "--set", "operator.workers=8")
    second = wait_for(
        lambda: chart.ready_pod(exclude=frozenset({first["metadata"]["uid"]})),
        120,
        interval=0.3,
        what="the upgraded operator pod Ready",
    )
    assert "--workers=8" in second["spec"]["containers"][0]["args"]
    markers.append(_marker(second))
    wait_for(lambda: not processes_with_marker(markers[0]), 60, what="the old operator gone")
    assert processes_with_marker(markers[1])

    chart.helm("uninstall", RELEASE, "-n", NS, "--wait")
    wait_for(
        lambda: not any(chart.release_objects().values()),
        120,
        interval=0.3,
        what="no object of the release left after helm uninstall",
    )

    def no_operator_process() -> bool:
        return not any(processes_with_marker(m) for m in markers)

    wait_for(no_operator_process, 60, what="no operator process left on the host")
