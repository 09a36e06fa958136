"""Fixtures: one cluster + one operator per test module; each test works in its own namespace.

``ELASTRAIN_CLUSTER`` chooses the cluster:

* ``embedded`` (default): the embedded sandbox, a fresh one per module, with fast crash-loop
  back-off and eviction; node faults through its ``/sandbox/nodes`` admin endpoints.
* ``real``: the real control plane with its node agent (``elastrain_sandbox.realcluster``,
  binaries from ``$ELASTRAIN_CONTROL_PLANE_BIN``), one for the session, whose modules each
  leave no namespace behind; node faults through its ``NodeAdmin`` methods.
* ``kubeconfig``: the cluster ``$KUBECONFIG`` names (else ``~/.kube/config``), as it is. The
  suite installs the CRD, creates its namespaces and runs the operator locally against it,
  and deletes what it created after each module. No node faults: those tests skip.

Tests that need something only some clusters offer say so with
``@pytest.mark.clusters("embedded", ..., reason=...)`` (skipped elsewhere, with the reason),
or ask for the ``nodes`` fixture (skipped where the cluster has no ``NodeAdmin``).
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import chart_rbac
import figures
import pytest
import rbac_audit
from cluster_api import Api, SandboxNodeAdmin
from elastrain_sandbox.admin import NodeAdmin
from elastrain_sandbox.agent.backoff import BackoffPolicy
from elastrain_sandbox.embedded import Sandbox
from operator_harness import Cluster, Operator
from sandbox_fixtures import KubeconfigKubectl, Kubectl, kubectl_binary

CLUSTER_ENV = "ELASTRAIN_CLUSTER"
KINDS = ("embedded", "real", "kubeconfig")
BIN_ENV = "ELASTRAIN_CONTROL_PLANE_BIN"
TIMEOUT_SCALE_ENV = "ELASTRAIN_TIMEOUT_SCALE"
NO_NODE_AGENT = "the real control plane's node agent is not available yet"

# The kubelet's crash-loop back-off, scaled down (same doubling and cap rules).
FAST_BACKOFF = BackoffPolicy(base=0.2, cap=1.0, reset_after=600.0)
AGENT_OPTIONS: dict[str, Any] = {"backoff": FAST_BACKOFF, "shutdown_grace": 1.0}
# How much longer than on the embedded cluster a wait may take before it fails (a bound, not
# a speed goal): the real control plane's pod GC waits 40 s for a vanished node; a real
# kubelet backs off 10 s, 20 s, 40 s between restarts and pulls images.
TIMEOUT_SCALE = {"embedded": 1.0, "real": 2.0, "kubeconfig": 3.0}


def cluster_kind() -> str:
    kind = os.environ.get(CLUSTER_ENV) or "embedded"
    if kind not in KINDS:
        raise pytest.UsageError(f"{CLUSTER_ENV}={kind!r}: expected one of {', '.join(KINDS)}")
    return kind


def timeout_scale(kind: str) -> float:
    value = os.environ.get(TIMEOUT_SCALE_ENV)
    return float(value) if value else TIMEOUT_SCALE[kind]


def pytest_configure(config: pytest.Config) -> None:
    cluster_kind()  # a misspelt switch fails at once, not as a skip
    config.addinivalue_line(
        "markers",
        "clusters(*kinds, reason): run only where ELASTRAIN_CLUSTER is one of kinds "
        "(embedded, real, kubeconfig); skipped elsewhere with the reason",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("clusters")
    kind = cluster_kind()
    if marker is not None and kind not in marker.args:
        reason = marker.kwargs.get("reason", "needs another cluster")
        pytest.skip(f"{reason} (runs on {', '.join(marker.args)}; {CLUSTER_ENV}={kind})")


# ---------------------------------------------------------------------- the three clusters
@contextmanager
def embedded_cluster(root: Path) -> Iterator[Cluster]:
    sb = Sandbox(
        nodes=2, state_dir=root / "sandbox", eviction_timeout=2, agent_options=AGENT_OPTIONS
    )
    sb.start()
    kubectl = Kubectl(sb)
    cluster = None
    try:
        # Node faults go through the admin API too, as they would for a CLI-started sandbox.
        nodes = SandboxNodeAdmin(Api(sb))
        scale = timeout_scale("embedded")
        cluster = Cluster(sb, kubectl, kind="embedded", nodes=nodes, timeout_scale=scale)
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        kubectl.close()
        sb.stop()


@contextmanager
def real_cluster(root: Path) -> Iterator[Cluster]:
    try:
        module = importlib.import_module("elastrain_sandbox.realcluster")
    except ModuleNotFoundError as exc:
        if exc.name != "elastrain_sandbox.realcluster":
            raise  # the module is there but broken: an error, not a skip
        pytest.skip(NO_NODE_AGENT)
    bin_dir = os.environ.get(BIN_ENV)
    if not bin_dir:
        pytest.skip(f"{CLUSTER_ENV}=real needs ${BIN_ENV} (`make control-plane` prints it)")
    (root / "state").mkdir(parents=True, exist_ok=True)
    audit_log = root / "state" / "operator-audit.log"
    real = module.RealCluster(
        root / "state",
        root / "admin.kubeconfig",
        Path(bin_dir),
        nodes=2,
        agent_options=AGENT_OPTIONS,
        apiserver_args=rbac_audit.apiserver_args(root / "state" / "audit-policy.yaml", audit_log),
    )
    kubectl = None
    cluster = None
    try:
        real.start()
        kubectl = KubeconfigKubectl(real.kubeconfig_path)
        nodes: NodeAdmin = real
        cluster = Cluster(
            real.kubeconfig_path,
            kubectl,
            kind="real",
            nodes=nodes,
            timeout_scale=timeout_scale("real"),
        )
        # Least privilege, proven: every operator of the suite runs as the chart's
        # ServiceAccount under the ClusterRole the chart renders (peering included).
        cluster.operator_kubeconfig = chart_rbac.install_identity(
            cluster.api,
            real.kubeconfig_path,
            root / "operator.kubeconfig",
            namespace=rbac_audit.OPERATOR_NAMESPACE,
            helm_args=("--set", "peering.enabled=true"),
        )
        # ... and what it asks is audited: a denied request fails its module (``cluster``).
        cluster.audit_log = audit_log
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        if kubectl is not None:
            kubectl.close()
        real.stop()


def given_kubeconfig(root: Path) -> Path:
    """``$KUBECONFIG`` as it is; several files are merged (``kubectl config view --flatten``)
    into one, since kubectl's ``--kubeconfig`` and our client read one file."""
    value = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    paths = [p for p in value.split(os.pathsep) if p]
    if len(paths) == 1:
        if not Path(paths[0]).is_file():
            pytest.fail(f"{CLUSTER_ENV}=kubeconfig: no kubeconfig at {paths[0]} (set KUBECONFIG)")
        return Path(paths[0])
    merged = root / "kubeconfig"
    proc = subprocess.run(
        [kubectl_binary(), "config", "view", "--flatten", "--raw"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"kubectl config view --flatten: {proc.stderr}")
    merged.write_text(proc.stdout)
    merged.chmod(0o600)
    return merged


@contextmanager
def kubeconfig_cluster(root: Path) -> Iterator[Cluster]:
    path = given_kubeconfig(root)
    kubectl = KubeconfigKubectl(path)
    cluster = Cluster(
        path, kubectl, kind="kubeconfig", owned=False, timeout_scale=timeout_scale("kubeconfig")
    )
    try:
        Api.check(cluster.api.call("GET", "/version"), "GET", "/version")
        yield cluster
    finally:
        try:
            cluster.cleanup()
        finally:
            cluster.close()
            kubectl.close()


CLUSTERS: dict[str, Callable[[Path], AbstractContextManager[Cluster]]] = {
    "embedded": embedded_cluster,
    "real": real_cluster,
    "kubeconfig": kubeconfig_cluster,
}


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def shared_real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One real control plane for the whole session: starting one (etcd, four binaries, the
    chart's RBAC) costs about ten seconds a module on this 2-core machine."""
    with real_cluster(tmp_path_factory.mktemp("cluster")) as c:
        c.install_crd()
        yield c
        if c.audit_log is not None:  # the figure of the session: what the suites exercised
            seen = rbac_audit.calls(c.audit_log)
            idle = rbac_audit.unseen(seen)
            figures.report(
                f"RBAC audit: {len(seen)} operator requests, all in elastrain.kube.access; "
                f"accesses never used in this run: {', '.join(idle) or 'none'}"
            )


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """A fresh cluster per module; the real one is shared by the session, and each module's
    namespaces are deleted (and gone) before the next module's operator starts. Node faults
    restore their nodes themselves."""
    if cluster_kind() == "real":
        shared: Cluster = request.getfixturevalue("shared_real_cluster")
        start = rbac_audit.size(shared.audit_log) if shared.audit_log else 0
        try:
            yield shared
        finally:
            shared.delete_namespaces()
        if shared.audit_log is not None:
            wrong = rbac_audit.unexpected(rbac_audit.calls(shared.audit_log, start))
            assert not wrong, f"the operator's requests against its RBAC: {wrong}"
        return
    with CLUSTERS[cluster_kind()](tmp_path_factory.mktemp("cluster")) as c:
        c.install_crd()
        yield c


@pytest.fixture(scope="module")
def nodes(cluster: Cluster) -> NodeAdmin:
    """The cluster's node admin (add, remove, flip readiness); the test skips where there is
    none. Ask for it first: being module-scoped, it then skips before the operator starts."""
    if cluster.nodes is None:
        pytest.skip(
            f"{CLUSTER_ENV}={cluster.kind} offers no node admin interface: node faults run "
            "on the embedded or the real cluster"
        )
    admin: NodeAdmin = cluster.nodes
    return admin


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    log = Path(tmp_path_factory.mktemp("operator")) / "operator.log"
    op = Operator(cluster.operator_kubeconfig, log).start()
    try:
        yield op
    finally:
        op.kill()


@pytest.fixture
def ns(cluster: Cluster, operator: Operator, request: pytest.FixtureRequest) -> str:
    """A fresh namespace for one test (the operator is already running)."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))
    return cluster.namespace(name[:40].strip("-"))
