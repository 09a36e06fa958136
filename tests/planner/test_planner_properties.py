"""Property tests: random jobs driven through random histories keep the planner's invariants.

Each example builds a job of random shape and policy, then interleaves reconciles (sometimes
with deletions left unfinished) with what the cluster and the user do: pods start, succeed,
fail (with any exit code, or disrupted), restart in place, vanish; time passes; the job is
scaled, suspended and resumed. Some reconciles do not see the pods the previous plan created yet
(the handlers' indexes lag behind their own creates); a ps that was never observed must never
be taken for a lost one. After every plan the invariants are checked, including crash
safety: re-planning after only the status write must repeat the same actions and count nothing.
"""

from __future__ import annotations

import copy
from typing import Any

from elastrain.planner.model import Plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planner_world import World, make_job, replica
from transition_oracle import expected, reported

POLICIES = ("OnFailure", "ExitCode", "Never", "Always")


@st.composite
def jobs(draw: st.DrawFn) -> dict[str, Any]:
    elastic = draw(st.booleans())
    workers = draw(st.integers(1, 4))
    roles: dict[str, dict[str, Any]] = {"worker": replica(workers, draw(st.sampled_from(POLICIES)))}
    if draw(st.booleans()):
        roles["chief"] = replica(1, draw(st.sampled_from(POLICIES)))
    if not elastic and draw(st.booleans()):
        roles["ps"] = replica(draw(st.integers(1, 2)), draw(st.sampled_from(POLICIES)))
    if draw(st.booleans()):
        roles["evaluator"] = replica(1, draw(st.sampled_from(POLICIES)))
    run_policy: dict[str, Any] = {
        "backoffLimit": draw(st.integers(0, 4)),
        "cleanPodPolicy": draw(st.sampled_from(("All", "Running", "None"))),
        "restartBackoff": {"initialSeconds": draw(st.sampled_from((0, 10))), "maxSeconds": 40},
    }
    if draw(st.booleans()):
        run_policy["activeDeadlineSeconds"] = draw(st.integers(100, 2000))
    if draw(st.booleans()):
        run_policy["ttlSecondsAfterFinished"] = draw(st.integers(0, 500))
    if draw(st.booleans()):
        run_policy["schedulingPolicy"] = {"queue": "q"}
    spec: dict[str, Any] = {
        "runPolicy": run_policy,
        "successPolicy": draw(st.sampled_from(("AllWorkers", "Chief"))),
    }
    if elastic:
        spec["elasticPolicy"] = {"minReplicas": 1, "maxReplicas": 4}
    return make_job(roles=roles, **spec)


# Weighted by repetition: mostly reconciles and pods coming up, so histories get far enough
# (Running, Scaling, Restarting) before a failure or a suspension ends them.
_ACTION_NAMES = (
    ("step",) * 6
    + ("step_unfinished",) * 2
    + ("step_lagging",) * 2
    + ("run_all",) * 3
    + ("run", "succeed", "fail", "restart", "restart", "remove", "finish_deletions")
    + ("advance",) * 2
    + ("scale", "scale", "suspend", "crd", "unknown", "foreign")
)
ACTIONS = st.lists(
    st.tuples(st.sampled_from(_ACTION_NAMES), st.integers(0, 1000)), min_size=5, max_size=60
)


def test_invariants_hold_through_random_histories() -> None:
    @settings(
        max_examples=120,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(job=jobs(), actions=ACTIONS, crd=st.booleans())
    def check(job: dict[str, Any], actions: list[tuple[str, int]], crd: bool) -> None:
        world = World(job, crd=crd)
        history = _History()
        for action, n in actions:
            _act(world, action, n, history)
        # Whatever happened, with time frozen the planner converges to doing nothing.
        for _ in range(8):
            p = _checked_step(world, history, finish=True)
            if not p.creates and not p.deletes and p.status is None:
                assert not p.events
                break
        else:
            raise AssertionError("no fixpoint")

    check()


class _History:
    def __init__(self) -> None:
        self.restart_count = 0
        self.terminal: str | None = None
        # Parameter servers removed by someone else, and ParameterServerLost events seen.
        self.ps_removed = 0
        self.ps_lost = 0


def _act(world: World, action: str, n: int, history: _History) -> None:
    names = world.pod_names()
    name = names[n % len(names)] if names else None
    live = name is not None and not world.pods[name]["metadata"].get("deletionTimestamp")
    if action in ("step", "step_unfinished"):
        _checked_step(world, history, finish=action == "step")
    elif action == "step_lagging":
        # Some of the pods the last plan created, picked by the bits of n.
        world.withheld = {pod for i, pod in enumerate(world.created_last) if n >> i & 1}
        try:
            _checked_step(world, history, finish=True)
        finally:
            world.withheld = set()
    elif action == "run" and name:
        world.run(name)
    elif action == "run_all":
        world.run()
    elif action == "succeed" and name and live:
        world.succeed(name)
    elif action == "fail" and name:
        code = (1, 2, 137, 143, None)[n % 5]
        disruption = "EvictionByEvictionAPI" if n % 7 == 0 else None
        world.fail(name, code, disruption=disruption, reason="Evicted" if n % 11 == 0 else None)
    elif action == "restart" and name and live:
        if world.pods[name]["status"]["phase"] == "Running":
            world.restart_in_place(name, 1 + n % 2)
    elif action == "remove" and name:
        history.ps_removed += "-ps-" in name
        world.remove(name)
    elif action == "finish_deletions":
        for pod_name in names:
            if world.pods[pod_name]["metadata"].get("deletionTimestamp"):
                world.remove(pod_name)
    elif action == "advance":
        world.advance(n % 400)
    elif action == "scale":
        spec = world.job["spec"]
        lo, hi = (1, 4)
        if "elasticPolicy" in spec:
            lo, hi = spec["elasticPolicy"]["minReplicas"], spec["elasticPolicy"]["maxReplicas"]
        spec["replicaSpecs"]["worker"]["replicas"] = lo + n % (hi - lo + 1)
        world.job["metadata"]["generation"] += 1
    elif action == "suspend":
        run_policy = world.job["spec"]["runPolicy"]
        run_policy["suspend"] = not run_policy.get("suspend", False)
    elif action == "crd":
        world.crd = not world.crd
    elif action == "unknown" and name and live:
        world.pods[name]["status"] = {"phase": "Unknown"}
    elif action == "foreign":
        # A namesake left behind by an earlier job of the same name.
        foreign = f"mnist-worker-{n % 5}"
        if foreign not in world.pods:
            world.pods[foreign] = {
                "metadata": {
                    "name": foreign,
                    "uid": f"foreign-{n}",
                    "labels": {"elastrain.dev/job-name": "mnist"},
                    "ownerReferences": [
                        {
                            "apiVersion": "elastrain.dev/v1alpha1",
                            "kind": "TrainingJob",
                            "name": "mnist",
                            "controller": True,
                            "uid": "earlier-job",
                        }
                    ],
                },
                "status": {"phase": ("Running", "Failed", "Succeeded")[n % 3]},
            }


def _checked_step(world: World, history: _History, *, finish: bool) -> Plan:
    observed = world.observed()
    before_status = copy.deepcopy(world.status)
    p = world.plan()
    _check_plan(world, observed.pods, before_status, p, history)
    _check_transitions(before_status, p)
    _check_crash_safety(world, p)
    world.apply(p, finish=finish)
    return p


def _check_plan(
    world: World, pods: list[dict[str, Any]], before: dict[str, Any], p: Plan, history: _History
) -> None:
    spec = world.job["spec"]
    status = p.status if p.status is not None else before
    observed_names = {pod["metadata"]["name"] for pod in pods}
    observed_uids = {pod["metadata"]["name"]: pod["metadata"]["uid"] for pod in pods}
    pod_creates = [o for o in p.creates if o["kind"] == "Pod"]
    names = [(o["kind"], o["metadata"]["name"]) for o in p.creates]
    assert len(names) == len(set(names)), "two children of a kind with the same name"
    for pod in pod_creates:
        meta = pod["metadata"]
        assert meta["name"] not in observed_names, "created a name still in use"
        role, index = (
            meta["labels"]["elastrain.dev/replica-type"],
            meta["labels"]["elastrain.dev/replica-index"],
        )
        assert 0 <= int(index) < spec["replicaSpecs"][role]["replicas"], "index out of range"
        assert meta["name"] == f"mnist-{role}-{index}"
    deleted = [(d.kind, d.name) for d in p.deletes]
    assert len(deleted) == len(set(deleted)), "deleted twice"
    for d in p.deletes:
        assert not (d.uid or "").startswith("foreign-"), "deleted a pod that is not ours"
        if d.kind == "Pod":
            assert observed_uids.get(d.name) == d.uid, "delete without the observed uid"
        if d.reason == "ScaledDown":
            index = int(d.name.rsplit("-", 1)[1])
            role = d.name.split("-")[1]
            assert index >= spec["replicaSpecs"].get(role, {}).get("replicas", 0)
    phase = status.get("phase")
    true = [c["type"] for c in status.get("conditions", []) if c["status"] == "True"]
    assert true == [phase], f"phase {phase} but True conditions {true}"
    assert status.get("restartCount", 0) >= history.restart_count, "restartCount decreased"
    history.restart_count = status.get("restartCount", 0)
    if history.terminal is not None:
        assert phase == history.terminal, "a finished job changed phase"
    if phase in ("Succeeded", "Failed"):
        history.terminal = phase
    if before.get("phase") in ("Succeeded", "Failed") or phase in ("Succeeded", "Failed"):
        assert not pod_creates, "created pods for a finished job"
        assert "completionTime" in status
    if spec.get("runPolicy", {}).get("suspend"):
        assert not p.creates, "created children for a suspended job"
        if phase not in ("Succeeded", "Failed"):
            assert phase == "Suspended"
    assert p.requeue_after is None or p.requeue_after > 0
    if phase == "Running":
        _check_running(spec, pods)
    history.ps_lost += sum(e.reason == "ParameterServerLost" for e in p.events)
    assert history.ps_lost <= history.ps_removed, "a ps was lost that nobody removed"


def _check_running(spec: dict[str, Any], pods: list[dict[str, Any]]) -> None:
    """Running only on the strength of observed pods whose containers started (phase Running,
    or done): elastic jobs need minReplicas workers, every other role all its replicas."""
    for role, replica_spec in spec["replicaSpecs"].items():
        need = replica_spec["replicas"]
        if role == "worker" and "elasticPolicy" in spec:
            need = min(need, spec["elasticPolicy"]["minReplicas"])
        started = [
            pod
            for pod in pods
            if pod["metadata"]["name"].startswith(f"mnist-{role}-")
            and pod["metadata"].get("ownerReferences", [{}])[0].get("uid") == "job-uid-1"
            and not pod["metadata"].get("deletionTimestamp")
            and pod["status"].get("phase") in ("Running", "Succeeded")
        ]
        assert len(started) >= need, f"Running with {len(started)}/{need} {role} pods started"


def _check_transitions(before: dict[str, Any], p: Plan) -> None:
    """The plan reports exactly the transitions its status write makes (what metrics count)."""
    after = dict(p.status) if p.status is not None else before
    assert reported(p.transitions) == expected(before, after), "transitions disagree with status"


def _check_crash_safety(world: World, p: Plan) -> None:
    """Only the status write happened: the next plan repeats the actions and counts nothing."""
    if p.status is None:
        return
    saved = world.job.get("status")
    world.job["status"] = copy.deepcopy(p.status)
    try:
        again = world.plan()
    finally:
        world.job["status"] = saved
    assert again.status is None, "status not stable after its own write"
    assert not again.events, "events repeated after a crash"
    assert not again.transitions, "transitions repeated after a crash"
    assert [(d.kind, d.name, d.uid) for d in again.deletes] == [
        (d.kind, d.name, d.uid) for d in p.deletes
    ]
    assert again.creates == p.creates
    assert again.delete_job == p.delete_job
