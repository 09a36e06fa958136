"""The WorkersPending condition: elastic workers Pending past elasticPolicy.pendingTimeoutSeconds
are reported (condition and Event) without changing the job's phase or worker count."""

from __future__ import annotations

from typing import Any

from planner_world import World, make_job

ELASTIC = {"minReplicas": 1, "maxReplicas": 4, "pendingTimeoutSeconds": 60}


def unschedulable(world: World, name: str) -> None:
    world.pods[name]["spec"].pop("nodeName", None)
    world.pods[name]["status"] = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            }
        ],
    }


def elastic_world(workers: int = 3, **policy: Any) -> World:
    """worker-0 runs, the others cannot be scheduled."""
    world = World(make_job(workers=workers, elasticPolicy={**ELASTIC, **policy}))
    world.step()
    world.step()
    world.run("mnist-worker-0")
    for name in sorted(world.pods)[1:]:
        unschedulable(world, name)
    world.settle()
    return world


def events(plan: Any) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in plan.events]


def test_workers_pending_past_the_timeout_are_reported_once_and_the_job_runs_on() -> None:
    world = elastic_world()
    assert world.phase == "Running"  # at minReplicas
    assert world.condition("WorkersPending") is None
    # The plan asks to look again when the first worker's timeout runs out.
    plan = world.plan()
    assert plan.requeue_after is not None and 59 <= plan.requeue_after <= 60
    world.advance(59)
    assert world.settle().status is None
    world.advance(1)
    plan = world.step()
    cond = world.condition("WorkersPending")
    assert cond is not None and cond["status"] == "True" and cond["reason"] == "PendingTimeout"
    assert cond["message"] == (
        "2 workers Pending for more than 1m: "
        "mnist-worker-1 (Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.), "
        "mnist-worker-2 (Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.); "
        "1 of 3 workers running"
    )
    assert ("Warning", "WorkersPending") in events(plan)
    # Nothing else changes: same phase, same pods, no restart counted.
    assert world.phase == "Running"
    assert world.pod_names() == ["mnist-worker-0", "mnist-worker-1", "mnist-worker-2"]
    assert world.status["restartCount"] == 0
    # Re-planning the same world writes nothing and sends no second Event.
    world.advance(30)
    plan = world.plan()
    assert plan.status is None and not plan.events


def test_the_condition_turns_false_once_the_workers_run() -> None:
    world = elastic_world()
    world.advance(60)
    world.step()
    since = world.condition("WorkersPending")["lastTransitionTime"]  # type: ignore[index]
    world.advance(5)
    world.run("mnist-worker-1")
    plan = world.step()
    cond = world.condition("WorkersPending")
    assert cond is not None and cond["status"] == "True"
    assert cond["lastTransitionTime"] == since
    assert cond["message"].startswith("1 worker Pending for more than 1m: mnist-worker-2 (")
    assert not [e for e in plan.events if e.reason.startswith("Workers")]
    world.run("mnist-worker-2")
    plan = world.step()
    cond = world.condition("WorkersPending")
    assert cond is not None and cond["status"] == "False"
    assert cond["reason"] == "WorkersScheduled"
    assert ("Normal", "WorkersScheduled") in events(plan)


def test_a_finished_job_is_no_longer_pending() -> None:
    world = elastic_world(workers=2)
    world.advance(60)
    world.step()
    assert world.condition("WorkersPending")["status"] == "True"  # type: ignore[index]
    world.succeed("mnist-worker-0")
    world.settle()
    assert world.phase == "Succeeded"
    cond = world.condition("WorkersPending")
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "NotActive")


def test_without_a_timeout_pending_workers_are_never_reported() -> None:
    world = World(make_job(workers=2, elasticPolicy={"minReplicas": 1, "maxReplicas": 2}))
    world.step()
    world.step()
    world.run("mnist-worker-0")
    unschedulable(world, "mnist-worker-1")
    world.settle()
    world.advance(86400)
    world.settle()
    assert world.phase == "Running"
    assert world.condition("WorkersPending") is None


def test_a_worker_created_later_gets_its_own_full_timeout() -> None:
    world = elastic_world(workers=1)
    world.advance(50)
    world.job["spec"]["replicaSpecs"]["worker"]["replicas"] = 2  # kubectl scale
    world.job["metadata"]["generation"] = 2
    world.step()
    unschedulable(world, "mnist-worker-1")
    world.advance(50)  # 100 s after the job's start, 50 s after this worker's creation
    world.settle()
    assert world.phase == "Scaling"
    assert world.condition("WorkersPending") is None
    world.advance(10)
    world.step()
    cond = world.condition("WorkersPending")
    assert cond is not None and cond["status"] == "True"
    assert "mnist-worker-1" in cond["message"] and "1 of 2 workers running" in cond["message"]


def test_the_rendezvous_host_is_placed_before_the_other_workers_are_created() -> None:
    """With one GPU free, the scheduler might give it to worker 2, leaving worker 0 (the c10d
    store every agent connects to) Pending: nothing would train, not even at minReplicas. So
    worker 0 goes first, the others once it has a node, and a lost worker 0 holds back the
    replacements of the others until its own replacement is placed."""
    world = World(make_job(workers=3, elasticPolicy=ELASTIC))
    world.unplaced = {"mnist-worker-0"}
    assert [c["metadata"]["name"] for c in world.step().creates if c["kind"] == "Pod"] == [
        "mnist-worker-0"
    ]
    assert world.step().creates == []  # still unplaced: nothing more
    world.pods["mnist-worker-0"]["spec"]["nodeName"] = "gpu-node"
    created = [c["metadata"]["name"] for c in world.step().creates if c["kind"] == "Pod"]
    assert created == ["mnist-worker-1", "mnist-worker-2"]
    # Non-elastic jobs need every pod anyway: all are created at once.
    static = World(make_job(workers=3))
    static.unplaced = {"mnist-worker-0"}
    assert len([c for c in static.step().creates if c["kind"] == "Pod"]) == 3


def trimmed_world() -> World:
    """worker-0 runs, workers 1 and 2 are Pending past the timeout under trimPendingWorkers."""
    world = elastic_world(trimPendingWorkers=True)
    world.advance(60)
    return world


def test_trim_gives_the_pending_workers_up_and_keeps_the_spec() -> None:
    world = trimmed_world()
    plan = world.step()
    assert ("Warning", "WorkersTrimmed") in events(plan)
    cond = world.condition("WorkersPending")
    assert cond is not None and cond["status"] == "True" and cond["reason"] == "WorkersTrimmed"
    assert "trimmed to 1 of 3 workers" in cond["message"]
    assert world.status["tracking"]["trimmed"] == {"to": 1, "spec": 3}
    world.settle()
    # The Pending workers are deleted as a scale-down, never recreated, nothing counted; the
    # spec still asks for 3.
    assert world.pod_names() == ["mnist-worker-0"]
    assert world.phase == "Running"
    assert world.status["restartCount"] == 0
    assert world.job["spec"]["replicaSpecs"]["worker"]["replicas"] == 3
    world.advance(600)
    world.settle()
    assert world.pod_names() == ["mnist-worker-0"]
    assert not [e for e in world.plan().events if e.reason == "WorkersTrimmed"]


def test_trim_never_drops_below_a_running_worker() -> None:
    """Only the highest indices go: worker 2 runs, so Pending worker 1 stays (the scheduler
    may place a higher index first)."""
    world = elastic_world(workers=4, trimPendingWorkers=True)
    world.run("mnist-worker-2")
    world.settle()
    world.advance(60)
    world.settle()
    assert world.status["tracking"]["trimmed"] == {"to": 3, "spec": 4}
    assert world.pod_names() == ["mnist-worker-0", "mnist-worker-1", "mnist-worker-2"]


def test_trim_keeps_min_replicas() -> None:
    world = elastic_world(minReplicas=2, trimPendingWorkers=True)
    world.advance(60)
    world.settle()
    assert world.status["tracking"]["trimmed"] == {"to": 2, "spec": 3}
    assert world.pod_names() == ["mnist-worker-0", "mnist-worker-1"]


def test_a_new_worker_count_ends_the_trim() -> None:
    world = trimmed_world()
    world.settle()
    assert world.pod_names() == ["mnist-worker-0"]
    world.job["spec"]["replicaSpecs"]["worker"]["replicas"] = 2  # kubectl scale, an HPA
    world.job["metadata"]["generation"] = 2
    world.settle()
    assert "trimmed" not in world.status["tracking"]
    assert world.pod_names() == ["mnist-worker-0", "mnist-worker-1"]


def test_without_trim_pending_workers_are_only_reported() -> None:
    world = elastic_world()
    world.advance(60)
    world.settle()
    assert "trimmed" not in world.status["tracking"]
    assert world.pod_names() == ["mnist-worker-0", "mnist-worker-1", "mnist-worker-2"]
