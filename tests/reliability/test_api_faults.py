"""API faults and stale views: the operator talks to the cluster through the fault proxy
(``elastrain_sandbox.faultproxy``), which answers 10% of requests with a 5xx (half of the
writes' ones after applying them), throttles with 429 and Retry-After, refuses updates with
409, cuts watch streams, expires them with 410, and delays and replays watch events, while
jobs of every kind are created, scaled, crash, are suspended, resumed and deleted.

The invariants hold at every snapshot; once the faults stop, every job ends in the state its
inputs call for. The faults injected, by kind, are printed with the figures.
"""

from __future__ import annotations

import threading
from pathlib import Path

import churn
import pytest
from elastrain_sandbox.faultproxy import KINDS, FaultRates
from fault_proxy_harness import proxied
from operator_harness import Cluster, Operator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(churn.TIMEOUT_S)]

SIZE = churn.Settings.from_env(jobs=21)
JOBS, CHURN_S, SEED = SIZE.jobs, SIZE.seconds, SIZE.seed


def test_invariants_hold_while_the_api_misbehaves(cluster: Cluster, tmp_path: Path) -> None:
    with proxied(
        cluster.operator_kubeconfig, tmp_path / "proxied.kubeconfig", FaultRates(), SEED
    ) as proxy_run:
        proxy = proxy_run.proxy
        ns = cluster.namespace("faults")
        operator = Operator(proxy_run.kubeconfig, tmp_path / "operator.log").start()

        def faults(stop: threading.Event) -> str:
            stop.wait()
            return "faults " + ", ".join(f"{k} {proxy.injected[k]}" for k in KINDS)

        def calm() -> None:
            proxy.rates = FaultRates.none()

        try:
            outcome = churn.run(
                cluster,
                ns,
                operator,
                churn.plans(JOBS),
                seconds=CHURN_S,
                seed=SEED,
                chaos=faults,
                settle=calm,
            )
        finally:
            operator.kill()
    figures = outcome.report("api faults", SEED, f", requests {dict(proxy.requests)}")
    # Every kind of fault was really fed to the operator, not just configured.
    assert all(proxy.injected[k] > 0 for k in KINDS), figures
