"""Operator crashes and restarts: the job converges from the observed state, nothing doubles.

Its own module (own sandbox and operator) because it kills and restarts the operator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_harness import Cluster, Operator, training_job

pytestmark = pytest.mark.slow

WORKERS = 16


@pytest.fixture
def slow_operator(cluster: Cluster, tmp_path: Path) -> Iterator[Operator]:
    # A tight client-side rate limit stretches the creation of 16 pods over a few seconds,
    # so the kill lands in the middle of it (the test checks that it did).
    op = Operator(
        cluster.operator_kubeconfig,
        tmp_path / "operator.log",
        "--kube-qps",
        "3",
        "--kube-burst",
        "1",
    )
    try:
        yield op.start()
    finally:
        op.kill()


def test_killed_mid_creation_and_restarted_ends_with_exactly_16_workers(
    cluster: Cluster, slow_operator: Operator
) -> None:
    ns = cluster.namespace("restart")
    cluster.apply(ns, training_job("big", "exec sleep 300", workers=WORKERS))
    cluster.wait(lambda: len(cluster.pods(ns, "big")) >= 3, "the first pods", timeout=60)
    slow_operator.kill()
    survivors = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.pods(ns, "big")}
    assert 3 <= len(survivors) < WORKERS, "the kill must land mid-creation"

    slow_operator.start("--kube-qps", "50", "--kube-burst", "100")
    job = cluster.wait_phase(ns, "big", "Running", timeout=90, operator=slow_operator)
    pods = cluster.pods(ns, "big")
    names = sorted(p["metadata"]["name"] for p in pods)
    assert names == sorted(f"big-worker-{i}" for i in range(WORKERS))
    # The pods made before the crash were adopted as they were, not deleted and recreated.
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}
    assert {name: uids[name] for name in survivors} == survivors
    assert job["status"]["replicaStatuses"]["worker"]["active"] == WORKERS
    assert job["status"]["restartCount"] == 0
    # Never announced twice. (It may not be announced at all: the killed operator had written
    # the Created status but not yet its Events, which a plan applies last; the restarted one
    # sees no transition left to announce.)
    created = [e for e in cluster.events(ns, "big") if e["reason"] == "JobCreated"]
    assert sum(e.get("count", 1) for e in created) <= 1


def test_sigterm_shuts_down_cleanly(cluster: Cluster, tmp_path: Path) -> None:
    op = Operator(cluster.operator_kubeconfig, tmp_path / "operator.log").start()
    try:
        assert op.terminate() == 0, op.log_tail()
    finally:
        op.kill()
