"""Fixtures: one sandbox + one operator per test module; each test works in its own namespace."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from elastrain_sandbox.agent.backoff import BackoffPolicy
from elastrain_sandbox.embedded import Sandbox
from operator_harness import Cluster, Operator
from sandbox_fixtures import Kubectl

# The kubelet's crash-loop back-off, scaled down (same doubling and cap rules).
FAST_BACKOFF = BackoffPolicy(base=0.2, cap=1.0, reset_after=600.0)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    sb = Sandbox(
        nodes=2,
        state_dir=root / "sandbox",
        eviction_timeout=2,
        agent_options={"backoff": FAST_BACKOFF, "shutdown_grace": 1.0},
    )
    sb.start()
    kubectl = Kubectl(sb)
    try:
        c = Cluster(sb, kubectl)
        c.install_crd()
        yield c
    finally:
        kubectl.close()
        sb.stop()


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    log = Path(tmp_path_factory.mktemp("operator")) / "operator.log"
    op = Operator(cluster.sb.kubeconfig_path, log).start()
    try:
        yield op
    finally:
        op.kill()


@pytest.fixture
def ns(cluster: Cluster, operator: Operator, request: pytest.FixtureRequest) -> str:
    """A fresh namespace for one test (the operator is already running)."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))
    return cluster.namespace(name[:40].strip("-"))
