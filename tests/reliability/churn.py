"""One churn driver for the reliability scenarios: jobs of every kind are created, scaled, crash,
are suspended, resumed and deleted on a seeded schedule while something else goes wrong (the
operator is killed, the API server misbehaves, nodes go away). The invariants are checked at
every step, and in the end every job must reach the state its inputs call for.

A scenario passes its trouble as ``chaos``: a callable run on its own thread with a
``threading.Event`` that is set when the churn window ends; it returns a figure to print.
``settle`` runs once the window has closed, before convergence is awaited (restart what the
chaos left stopped, switch faults off).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from figures import report as report_figures
from invariants import Invariants, Snapshot
from operator_harness import Cluster, Operator, training_job

# What each kind of job runs, and the state its inputs call for in the end.
LONG = "exec sleep 3600"
# Each pod fails once (its emptyDir keeps the mark across the in-place restart), then runs.
CRASH_ONCE = "if [ -f /mark/once ]; then exec sleep 3600; fi; touch /mark/once; exit 1"
KINDS = ("done", "fails", "scaled", "suspended", "resumed", "deleted", "crash-once")
SETTLE_S = 240.0
# How long the settled rules may take to hold once every job ended as planned: a pod's graceful
# deletion (30 s of grace at most here) plus slack. A deletion stuck longer is a violation.
IN_FLIGHT_S = 60.0


@dataclass(frozen=True)
class Settings:
    """A scenario's size: ``make test`` uses the defaults, ``make soak`` sets the variables."""

    jobs: int
    seconds: float
    seed: int

    @classmethod
    def from_env(cls, jobs: int) -> Settings:
        seed = int(os.environ.get("ELASTRAIN_SOAK_SEED", "0")) or random.randrange(1, 1 << 30)  # noqa: S311
        return cls(
            int(os.environ.get("ELASTRAIN_SOAK_JOBS", str(jobs))),
            float(os.environ.get("ELASTRAIN_SOAK_SECONDS", "25")),
            seed,
        )


# pytest-timeout for a scenario: its churn window plus ten minutes to settle and check.
TIMEOUT_S = int(float(os.environ.get("ELASTRAIN_SOAK_SECONDS", "25"))) + 600


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


def plans(count: int, kinds: tuple[str, ...] = KINDS) -> list[Plan]:
    out = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
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


@dataclass
class Outcome:
    """What a churn run did, for the scenario's figures line and its asserts."""

    jobs: int
    seconds: float
    actions: Counter[str]
    checker: Invariants
    violations: list[str]
    converged_after: float
    chaos: str

    def report(self, scenario: str, seed: int, extra: str = "") -> str:
        """Print the figures line, fail on any violation, and return the line."""
        figures = self.figures(scenario, seed) + extra
        report_figures(figures)
        assert not self.violations, f"{figures}\n" + "\n".join(self.violations[:30])
        return figures

    def figures(self, scenario: str, seed: int) -> str:
        return (
            f"{scenario}: seed {seed}, {self.jobs} jobs, {self.seconds:.0f}s, {self.chaos}, "
            f"actions {dict(self.actions)}, snapshots {self.checker.snapshots}, invariant "
            f"checks {self.checker.checks}, violations {len(self.violations)}, "
            f"converged after {self.converged_after:.0f}s"
        )


def _await_settled(
    cluster: Cluster, ns: str, checker: Invariants, check_always: Callable[[Snapshot], None]
) -> list[str]:
    """The settled rules, polled until they hold: what is still in flight must land first (a
    suspended job's pods finish their graceful deletion after the job reads Suspended). What
    still breaks them after ``IN_FLIGHT_S`` is returned; the always-rules are checked too."""
    deadline = time.monotonic() + IN_FLIGHT_S * cluster.timeout_scale
    while True:
        snap = Snapshot.take(cluster.api, [ns])
        check_always(snap)
        unsettled = checker.settled(snap)
        if not unsettled or time.monotonic() >= deadline:
            return unsettled
        time.sleep(0.5)


def run(
    cluster: Cluster,
    ns: str,
    operator: Operator,
    jobs: list[Plan],
    *,
    seconds: float,
    seed: int,
    chaos: Callable[[threading.Event], str],
    settle: Callable[[], None] = lambda: None,
) -> Outcome:
    """Drive ``jobs`` through their changes for ``seconds`` while ``chaos`` runs; then
    ``settle`` and wait (with the invariants checked) until every job ended as planned."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible schedule, not a secret)
    checker = Invariants()
    violations: list[str] = []
    done: Counter[str] = Counter()
    started = time.monotonic()

    def check_always(snap: Snapshot) -> None:
        for found in checker.check(snap):
            violations.append(f"{time.monotonic() - started:6.1f}s {found}")

    def check() -> None:
        check_always(Snapshot.take(cluster.api, [ns]))

    actions: dict[str, Callable[[Plan], None]] = {
        "create": lambda p: cluster.apply(ns, p.manifest()),
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
    by_name = {p.name: p for p in jobs}
    # Every job is created in the first third of the window, and its changes follow at random
    # moments, in the job's order; the chaos runs meanwhile, on its own clock.
    schedule: list[tuple[float, str, str]] = []
    for plan in jobs:
        moment = rng.uniform(0, seconds / 3)
        for change in ["create", *plan.changes]:
            schedule.append((moment, plan.name, change))
            moment += rng.uniform(1, seconds / 3)
    schedule.sort()

    stop = threading.Event()
    chaos_result: list[str] = []
    chaos_errors: list[BaseException] = []

    def chaos_thread() -> None:
        try:
            chaos_result.append(chaos(stop))
        except BaseException as exc:  # reported by the test, never lost in a thread
            chaos_errors.append(exc)

    thread = threading.Thread(target=chaos_thread, name="churn-chaos", daemon=True)
    thread.start()
    try:
        while time.monotonic() - started < seconds or schedule:
            while schedule and schedule[0][0] <= time.monotonic() - started:
                _, name, change = schedule.pop(0)
                actions[change](by_name[name])
                done[change] += 1
            if time.monotonic() - started >= seconds:
                stop.set()
            check()
            time.sleep(0.5)
        stop.set()
        thread.join(timeout=120)
        assert not chaos_errors, f"the chaos thread failed: {chaos_errors[0]!r}"
        settle()

        # Nothing goes wrong any more: every job must reach its end, with the rules held.
        deadline = time.monotonic() + SETTLE_S * cluster.timeout_scale
        while True:
            pending = {p.name: why for p in jobs if (why := ended_as_planned(cluster, ns, p))}
            check()
            if not pending:
                break
            assert time.monotonic() < deadline, (
                f"not converged after {SETTLE_S:.0f}s (seed {seed}): {pending}\n"
                f"operator log:\n{operator.log_tail(40)}"
            )
            time.sleep(0.5)
        unsettled = _await_settled(cluster, ns, checker, check_always)
        violations.extend(f"{time.monotonic() - started:6.1f}s {u}" for u in unsettled)
    finally:
        stop.set()
        thread.join(timeout=120)
    return Outcome(
        jobs=len(jobs),
        seconds=seconds,
        actions=done,
        checker=checker,
        violations=violations,
        converged_after=time.monotonic() - started,
        chaos=chaos_result[0] if chaos_result else "",
    )
