"""Operator crashes under churn: SIGKILL the operator about every 5 s and restart it while jobs
are created, scaled, crash, are suspended, resumed and deleted. The invariants hold at every
snapshot, and every job ends in the state its inputs call for.

``make test`` runs a short version (21 jobs, 25 s of churn); ``make soak`` the long one
(``ELASTRAIN_SOAK_JOBS=200 ELASTRAIN_SOAK_SECONDS=1800``). The figures are printed at the end.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import churn
import pytest
from operator_harness import Cluster, Operator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(churn.TIMEOUT_S)]

SIZE = churn.Settings.from_env(jobs=21)
JOBS, CHURN_S, SEED = SIZE.jobs, SIZE.seconds, SIZE.seed
KILL_EVERY_S = 5.0


def test_invariants_hold_while_the_operator_is_killed_under_churn(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = cluster.namespace("churn")
    operator = Operator(cluster.operator_kubeconfig, tmp_path / "operator.log").start()
    kill_rng = random.Random(SEED + 1)  # noqa: S311 (its own stream: the schedule stays the same)
    kills = 0

    def killer(stop: threading.Event) -> str:
        nonlocal kills
        while not stop.wait(kill_rng.uniform(0.5, 1.5) * KILL_EVERY_S):
            operator.kill()
            kills += 1
            operator.start()
        return f"operator kills {kills}"

    def restart() -> None:
        if operator.proc is None or operator.proc.poll() is not None:
            operator.start()  # the killer stopped between a kill and a start

    try:
        outcome = churn.run(
            cluster,
            ns,
            operator,
            churn.plans(JOBS),
            seconds=CHURN_S,
            seed=SEED,
            chaos=killer,
            settle=restart,
        )
    finally:
        operator.kill()
    figures = outcome.report("churn", SEED)
    assert kills >= CHURN_S // (KILL_EVERY_S * 1.5), figures
