"""Two operators with --peering: one works, the other stands by and takes over when the first
dies. --namespace limits the scope.

Its own module: it runs several operators side by side and installs kopf's peering CRD.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import figures
import pytest
from operator_harness import Cluster, Operator, training_job

pytestmark = pytest.mark.slow

# The CRD and object the chart installs with peering.enabled=true (cluster-wide flavour).
PEERING = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: clusterkopfpeerings.kopf.dev}
spec:
  group: kopf.dev
  scope: Cluster
  names: {kind: ClusterKopfPeering, plural: clusterkopfpeerings, singular: clusterkopfpeering}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def created_total(operator: Operator, namespace: str) -> float:
    key = ("elastrain_jobs_created_total", frozenset({("namespace", namespace)}))
    return operator.metrics().get(key, 0.0)


def active(operator: Operator) -> bool:
    """Whether the operator's log says it resumed last (kopf starts every peer paused)."""
    log = operator.log_tail(2000)
    return log.rfind("Resuming operations") > log.rfind("Pausing operations in favour of")


def test_peered_operators_reconcile_each_job_once(cluster: Cluster, tmp_path: Path) -> None:
    cluster.install(manifest=PEERING)
    cluster.wait(
        lambda: cluster.api.call("GET", "/apis/kopf.dev/v1/clusterkopfpeerings").ok,
        "peering CRD served",
    )
    cluster.install(
        manifest="{apiVersion: kopf.dev/v1, kind: ClusterKopfPeering, metadata: {name: elastrain}}"
    )
    peering = "/apis/kopf.dev/v1/clusterkopfpeerings/elastrain"

    def peers() -> int:
        return len((cluster.api.get(peering) or {}).get("status") or {})

    # Fixed priorities, the standby joining once the active one is in the peering object: the
    # standby's first look already shows a higher peer, so it never resumes even briefly. (With
    # random ones, a later-started higher peer takes over, and a job submitted in that hand-over
    # could be reconciled by both: a race in the test, not in the operator.)
    first = Operator(
        cluster.operator_kubeconfig,
        tmp_path / "a.log",
        *("--peering", "elastrain", "--peering-priority", "200", "--peering-lifetime", "10"),
    )
    second = Operator(
        cluster.operator_kubeconfig,
        tmp_path / "b.log",
        *("--peering", "elastrain", "--peering-priority", "100", "--peering-lifetime", "10"),
    )
    standby = second
    try:
        first.start()
        cluster.wait(lambda: active(first) and peers() == 1, "the first operator active")
        second.start()
        cluster.wait(lambda: peers() == 2, "both operators in the peering object")
        assert active(first) and not active(second)
        ns = cluster.namespace("peered")
        cluster.apply(ns, training_job("once", "exit 0", workers=2))
        cluster.wait_phase(ns, "once", "Succeeded", operator=first)
        assert not active(second)
        assert created_total(first, ns) + created_total(second, ns) == 1
        # The standby did nothing at all: not one reconcile.
        reconciles: tuple[str, frozenset[tuple[str, str]]] = (
            "elastrain_reconcile_duration_seconds_count",
            frozenset(),
        )
        assert standby.metrics()[reconciles] == 0

        # The active operator dies without a goodbye: the standby takes over once the dead
        # one's record runs out (10 s) and runs the next job.
        killed = time.monotonic()
        first.kill()
        cluster.wait(lambda: active(second), "the standby active", timeout=60)
        figures.report(
            f"peering ({cluster.kind}): the standby took over "
            f"{time.monotonic() - killed:.0f}s after the active operator's SIGKILL "
            "(peering lifetime 10 s)"
        )
        cluster.apply(ns, training_job("after", "exit 0", workers=2))
        cluster.wait_phase(ns, "after", "Succeeded", operator=second)
        assert created_total(second, ns) == 1
    finally:
        first.kill()
        second.kill()


def test_namespaced_operator_ignores_other_namespaces(cluster: Cluster, tmp_path: Path) -> None:
    mine, other = cluster.namespace("watched"), cluster.namespace("unwatched")
    op = Operator(
        cluster.operator_kubeconfig,
        tmp_path / "op.log",
        "--namespace",
        mine,
        "--log-format",
        "json",
    )
    try:
        op.start()
        cluster.apply(other, training_job("skip", "exit 0"))
        cluster.apply(mine, training_job("done", "exit 0"))
        cluster.wait_phase(mine, "done", "Succeeded", operator=op)
        skipped = cluster.job(other, "skip")
        assert skipped is not None and "status" not in skipped
        assert not cluster.pods(other, "skip")
        # --log-format json: every log line is one JSON object.
        lines = [line for line in op.log_tail(200).splitlines() if line.startswith("{")]
        assert lines and all(isinstance(json.loads(line), dict) for line in lines)
    finally:
        op.kill()
