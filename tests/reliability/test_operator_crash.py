"""Operator crashes under churn: SIGKILL the operator about every 5 s and restart it while jobs
are created, scaled, crash, are suspended, resumed and deleted. The invariants hold at every
snapshot, and every job ends in the state its inputs call for.

``make test`` runs a short version (21 jobs, 25 s of churn); ``make soak`` the long one
(``ELASTRAIN_SOAK_JOBS=200 ELASTRAIN_SOAK_SECONDS=1800``). The figures are printed at the end.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from invariants import Invariants, Snapshot
from operator_harness import Cluster, Operator, training_job

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(int(os.environ.get("ELASTRAIN_SOAK_SECONDS", "25")) + 600),
]

JOBS = int(os.environ.get("ELASTRAIN_SOAK_JOBS", "21"))
CHURN_S = float(os.environ.get("ELASTRAIN_SOAK_SECONDS", "25"))
KILL_EVERY_S = 5.0
SEED = int(os.environ.get("ELASTRAIN_SOAK_SEED", "0")) or random.randrange(1, 1 << 30)  # noqa: S311
SETTLE_S = 240.0

# What each kind of job runs, and the state its inputs call for in the end.
LONG = "exec sleep 3600"
# Each pod fails once (its emptyDir keeps the mark across the in-place restart), then runs.
CRASH_ONCE = "if [ -f /mark/once ]; then exec sleep 3600; fi; touch /mark/once; exit 1"
KINDS = ("done", "fails", "scaled", "suspended", "resumed", "deleted", "crash-once")


@dataclass
class Plan:
    """One job: its kind, and the changes still to make to it during the churn."""

    name: str
    kind: str
    changes: list[str] = field(default_factory=list)

    def manifest(self) -> dict[str, Any]:
        fast = {"backoffLimit": 4, "cleanPodPolicy": "None"}
        if self.kind == "done":
            return training_job(self.name, "sleep 2", workers=2, run_policy=fast)
        if self.kind == "fails":
            return training_job(self.name, "sleep 1; exit 3", workers=2, restart="ExitCode")
        if self.kind == "crash-once":
            mark = [{"name": "mark", "emptyDir": {}}]
            return training_job(self.name, CRASH_ONCE, workers=2, volumes=mark, run_policy=fast)
        return training_job(self.name, LONG, workers=2)


def plans() -> list[Plan]:
    out = []
    for i in range(JOBS):
        kind = KINDS[i % len(KINDS)]
        changes = {
            "scaled": ["scale"],
            "suspended": ["suspend"],
            "resumed": ["suspend", "resume"],
            "deleted": ["delete"],
        }.get(kind, [])
        out.append(Plan(f"churn-{i}", kind, changes))
    return out


def ended_as_planned(cluster: Cluster, ns: str, plan: Plan) -> str | None:
    """Why ``plan``'s job is not (yet) in its final state; None once it is."""
    job = cluster.job(ns, plan.name)
    pods = [p for p in cluster.pods(ns, plan.name) if not p["metadata"].get("deletionTimestamp")]
    running = sorted(
        p["metadata"]["name"] for p in pods if (p.get("status") or {}).get("phase") == "Running"
    )
    if plan.kind == "deleted":
        return None if job is None and not pods else f"still there with {len(pods)} pods"
    if job is None:
        return "gone"
    status = job.get("status") or {}
    phase, restarts = status.get("phase"), status.get("restartCount", 0)
    want: dict[str, tuple[str, int, int]] = {  # phase, running pods, restartCount
        "done": ("Succeeded", 0, 0),
        "fails": ("Failed", 0, 0),
        "scaled": ("Running", 3, 0),
        "suspended": ("Suspended", 0, 0),
        "resumed": ("Running", 2, 0),
        # Exactly one counted restart per pod, however often the operator died meanwhile.
        "crash-once": ("Running", 2, 2),
    }
    expected = want[plan.kind]
    got = (phase, len(running), restarts)
    return None if got == expected else f"(phase, running, restartCount) {got}, want {expected}"


def test_invariants_hold_while_the_operator_is_killed_under_churn(
    cluster: Cluster, tmp_path: Path
) -> None:
    rng = random.Random(SEED)  # noqa: S311 (a reproducible schedule, not a secret)
    ns = cluster.namespace("churn")
    operator = Operator(cluster.operator_kubeconfig, tmp_path / "operator.log").start()
    checker = Invariants()
    violations: list[str] = []
    done: Counter[str] = Counter()

    def check(settled: bool = False) -> None:
        for found in checker.check(Snapshot.take(cluster.api, [ns]), settled=settled):
            violations.append(f"{time.monotonic() - started:6.1f}s {found}")

    actions: dict[str, Callable[[Plan], None]] = {
        "scale": lambda p: cluster.kubectl(
            "-n", ns, "scale", "trainingjob", p.name, "--replicas=3"
        ),
        "suspend": lambda p: cluster.kubectl(
            "-n", ns, "patch", "trainingjob", p.name, "--type=merge",
            "-p", '{"spec":{"runPolicy":{"suspend":true}}}',
        ),
        "resume": lambda p: cluster.kubectl(
            "-n", ns, "patch", "trainingjob", p.name, "--type=merge",
            "-p", '{"spec":{"runPolicy":{"suspend":false}}}',
        ),
        "delete": lambda p: cluster.kubectl(
            "-n", ns, "delete", "trainingjob", p.name, "--wait=false"
        ),
    }  # fmt: skip
    jobs = plans()
    by_name = {p.name: p for p in jobs}
    # Every job is created in the first third of the window, and its changes follow at random
    # moments, in the job's order; the operator dies meanwhile, on its own clock.
    schedule: list[tuple[float, str, str]] = []
    for plan in jobs:
        moment = rng.uniform(0, CHURN_S / 3)
        for change in ["create", *plan.changes]:
            schedule.append((moment, plan.name, change))
            moment += rng.uniform(1, CHURN_S / 3)
    schedule.sort()
    actions["create"] = lambda p: cluster.apply(ns, p.manifest())
    stop = threading.Event()
    kills = 0
    killer_errors: list[BaseException] = []
    kill_rng = random.Random(SEED + 1)  # noqa: S311 (its own stream: the schedule stays the same)

    def killer() -> None:
        nonlocal kills
        try:
            while not stop.wait(kill_rng.uniform(0.5, 1.5) * KILL_EVERY_S):
                operator.kill()
                kills += 1
                operator.start()
        except BaseException as exc:  # reported by the test, never lost in a thread
            killer_errors.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=killer, name="operator-killer", daemon=True)
    thread.start()
    try:
        while time.monotonic() - started < CHURN_S or schedule:
            while schedule and schedule[0][0] <= time.monotonic() - started:
                _, name, change = schedule.pop(0)
                actions[change](by_name[name])
                done[change] += 1
            if time.monotonic() - started >= CHURN_S:
                stop.set()
            check()
            time.sleep(0.5)
        stop.set()
        thread.join(timeout=120)
        if operator.proc is None or operator.proc.poll() is not None:
            operator.start()  # the killer stopped between a kill and a start

        # The operator stays up now: every job must reach its end, with the rules held.
        deadline = time.monotonic() + SETTLE_S * cluster.timeout_scale
        while True:
            pending = {p.name: why for p in jobs if (why := ended_as_planned(cluster, ns, p))}
            check()
            if not pending:
                break
            assert time.monotonic() < deadline, (
                f"not converged after {SETTLE_S:.0f}s (seed {SEED}): {pending}\n"
                f"operator log:\n{operator.log_tail(40)}"
            )
            time.sleep(0.5)
        check(settled=True)
    finally:
        stop.set()
        thread.join(timeout=120)
        operator.kill()
    assert not killer_errors, f"restarting the operator failed: {killer_errors[0]!r}"
    figures = (
        f"churn: seed {SEED}, {len(jobs)} jobs, {CHURN_S:.0f}s, operator kills {kills}, "
        f"actions {dict(done)}, snapshots {checker.snapshots}, invariant checks "
        f"{checker.checks}, violations {len(violations)}, "
        f"converged after {time.monotonic() - started:.0f}s"
    )
    print(figures)
    assert not violations, f"{figures}\n" + "\n".join(violations[:30])
    assert kills >= CHURN_S // (KILL_EVERY_S * 1.5), figures
