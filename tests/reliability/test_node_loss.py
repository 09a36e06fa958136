"""Node loss under churn: while jobs are created, scaled, suspended, resumed and deleted, a node
is added and a node under running pods is removed about every 5 s, and a node goes NotReady and
comes back. Lost pods are replaced, the losses are disruptions, and no job's ``restartCount``
moves (every job must end with 0): ``backoffLimit`` is untouched.

Crash-once jobs are left out: a crash-once pod moved to a new node starts with a fresh
``emptyDir`` and rightly crashes (and counts) once more.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path

import churn
import pytest
from elastrain_sandbox.admin import NodeAdmin
from operator_harness import Cluster, Operator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(churn.TIMEOUT_S)]

SIZE = churn.Settings.from_env(jobs=18)
JOBS, CHURN_S, SEED = SIZE.jobs, SIZE.seconds, SIZE.seed
NODE_EVERY_S = 5.0
KINDS = tuple(k for k in churn.KINDS if k != "crash-once")


def test_invariants_hold_while_nodes_are_lost_under_churn(
    cluster: Cluster, nodes: NodeAdmin, tmp_path: Path
) -> None:
    ns = cluster.namespace("node-loss")
    operator = Operator(cluster.operator_kubeconfig, tmp_path / "operator.log").start()
    rng = random.Random(SEED + 2)  # noqa: S311 (its own stream: the job schedule stays the same)
    lost: list[str] = []
    not_ready = 0
    added: list[str] = []

    pods_lost = 0

    def busy_nodes() -> Counter[str]:
        """Nodes under running pods of the churn, with how many each runs."""
        return Counter(
            p["spec"]["nodeName"]
            for p in cluster.api.items(f"/api/v1/namespaces/{ns}/pods")
            if (p.get("spec") or {}).get("nodeName")
            and (p.get("status") or {}).get("phase") == "Running"
        )

    def node_chaos(stop: threading.Event) -> str:
        nonlocal not_ready, pods_lost
        step = 0
        while not stop.wait(rng.uniform(0.5, 1.5) * NODE_EVERY_S):
            step += 1
            # A fresh node first, so that capacity never shrinks, then one under running pods.
            name = f"spare-{step}"
            nodes.add_node(name)
            added.append(name)
            busy = busy_nodes()
            # Not a node already removed: on the real control plane its pods read Running until
            # the pod garbage collector's quarantine (40 s) ends, but no agent serves it any more.
            candidates = sorted(n for n in busy if n != name and n not in lost)
            if not candidates:
                continue
            if step % 4 == 0:  # NotReady for a moment, then back: nothing is lost or counted
                victim = rng.choice(candidates)
                nodes.set_node_ready(victim, False)
                stop.wait(1.0)
                nodes.set_node_ready(victim, True)
                not_ready += 1
                continue
            victim = rng.choice(candidates)
            nodes.remove_node(victim)
            lost.append(victim)
            pods_lost += busy[victim]
        return (
            f"nodes lost {len(lost)} (under {pods_lost} running pods), NotReady flips "
            f"{not_ready}, nodes added {len(added)}"
        )

    plans = churn.plans(JOBS, KINDS)
    try:
        outcome = churn.run(
            cluster,
            ns,
            operator,
            plans,
            seconds=CHURN_S,
            seed=SEED,
            chaos=node_chaos,
        )
    finally:
        operator.kill()
        # The cluster as it was: the base nodes back, the spares gone (a shared real cluster).
        for name in lost:
            if name not in added:
                nodes.add_node(name)
        for name in added:
            if name not in lost:
                nodes.remove_node(name)
    figures = outcome.report("node loss", SEED)
    assert len(lost) >= 2, figures
