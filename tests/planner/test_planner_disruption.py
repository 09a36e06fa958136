"""Disruption windows: the restarts and retryable failures that a disruption causes in the
job's other pods (worker 0 hosts the rendezvous store) are not counted against backoffLimit."""

from __future__ import annotations

from typing import Any

from elastrain.planner.restarts import DISRUPTION_GRACE_SECONDS
from planner_world import World, make_job

W0, W1 = "mnist-worker-0", "mnist-worker-1"


def running_world(**run_policy: Any) -> World:
    policy = run_policy.pop("policy", "OnFailure")
    world = World(make_job(workers=2, policy=policy, runPolicy={"backoffLimit": 0, **run_policy}))
    world.settle()
    world.run()
    world.step()
    assert world.phase == "Running"
    return world


def evict(world: World, name: str) -> None:
    """The eviction API: a DisruptionTarget condition, then a graceful delete."""
    pod = world.pods[name]
    pod["metadata"]["deletionTimestamp"] = world.ts()
    pod["status"].setdefault("conditions", []).append(
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
    )


def reasons(plan: Any) -> list[str]:
    return [e.reason for e in plan.events]


def replace_worker_0(world: World) -> None:
    world.remove(W0)
    world.step()
    world.run(W0)
    world.step()


def test_restarts_caused_by_evicting_worker_0_are_not_counted() -> None:
    world = running_world()
    evict(world, W0)
    world.step()
    # worker 1's agent loses the rendezvous store on worker 0 and its container restarts.
    world.restart_in_place(W1, times=2)
    plan = world.step()
    assert "RestartNotCounted" in reasons(plan)
    assert world.status["restartCount"] == 0
    assert world.phase != "Failed"  # backoffLimit 0: one counted restart would end the job
    replace_worker_0(world)
    assert world.phase == "Running" and world.status["restartCount"] == 0


def test_the_window_closes_a_grace_period_after_recovery() -> None:
    world = running_world(backoffLimit=5)
    evict(world, W0)
    world.step()
    replace_worker_0(world)
    window = world.status["tracking"]["disruption"]
    assert window["cause"] == W0 and window["ends"] == world.ts_after(DISRUPTION_GRACE_SECONDS)
    # Still a consequence within the grace: the group re-forms.
    world.advance(DISRUPTION_GRACE_SECONDS - 1)
    world.restart_in_place(W1)
    world.step()
    assert world.status["restartCount"] == 0
    # After it, a restart is the pod's own again, and the plan had asked to look then.
    assert world.plan().requeue_after is not None
    world.advance(1)
    world.step()
    assert "disruption" not in world.status["tracking"]
    world.restart_in_place(W1)
    plan = world.step()
    assert world.status["restartCount"] == 1 and "ContainerRestarted" in reasons(plan)


def test_the_window_stays_open_until_every_pod_is_ready_again() -> None:
    world = running_world(backoffLimit=5)
    evict(world, W0)
    # worker 1 crash-loops (not Ready) from the eviction on, long after worker 0 came back:
    # its restarts are still the disruption's.
    world.pods[W1]["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    world.step()
    replace_worker_0(world)
    world.restart_in_place(W1)
    world.step()
    assert "ends" not in world.status["tracking"]["disruption"]
    world.advance(10 * DISRUPTION_GRACE_SECONDS)
    world.restart_in_place(W1)
    world.step()
    assert world.status["restartCount"] == 0


def test_retryable_failures_in_the_window_are_recreated_without_counting() -> None:
    world = running_world(policy="ExitCode")
    evict(world, W0)
    world.step()
    world.fail(W1, 143)
    plan = world.step()
    assert "PodDisrupted" in reasons(plan)
    assert world.status["restartCount"] == 0 and world.phase == "Restarting"
    assert W1 in [d.name for d in plan.deletes]  # recreated at once, like a disrupted pod


def test_a_permanent_failure_in_the_window_still_fails_the_job() -> None:
    world = running_world(policy="ExitCode")
    evict(world, W0)
    world.step()
    world.fail(W1, 2)
    world.step()
    assert world.phase == "Failed"
    failed = world.condition("Failed")
    assert failed is not None and failed["reason"] == "ExitCodeNotRetryable"


def test_without_a_disruption_every_restart_counts() -> None:
    world = running_world(backoffLimit=5)
    world.restart_in_place(W1)
    world.step()
    assert world.status["restartCount"] == 1
    assert "disruption" not in world.status["tracking"]


def test_a_pod_scaled_away_is_no_disruption() -> None:
    elastic = {"minReplicas": 1, "maxReplicas": 2}
    world = World(make_job(workers=2, elasticPolicy=elastic, runPolicy={"backoffLimit": 5}))
    world.settle()
    world.run()
    world.step()
    world.job["spec"]["replicaSpecs"]["worker"]["replicas"] = 1
    plan = world.step(finish=False)  # worker 1 is released and terminating
    assert [d.name for d in plan.deletes] == [W1]
    world.restart_in_place(W0)
    world.step()
    assert world.status["restartCount"] == 1
    assert "disruption" not in world.status["tracking"]
