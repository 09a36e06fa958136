"""Status and lifecycle: phases, conditions, events, success, run policy, suspend, scaling."""

from __future__ import annotations

from planner_world import T0, World, make_job, replica


def phases(world: World) -> dict[str, str]:
    return {c["type"]: c["status"] for c in world.status["conditions"]}


def test_created_then_running_then_succeeded_with_one_true_condition_each_time() -> None:
    world = World(make_job(workers=2))
    p = world.step()
    assert world.phase == "Created" and [e.reason for e in p.events] == ["JobCreated"]
    assert world.status["startTime"] == "2026-01-01T12:00:00Z"
    assert world.status["selector"] == (
        "elastrain.dev/job-name=mnist,elastrain.dev/replica-type=worker"
    )
    assert world.status["observedGeneration"] == 1
    world.advance(5)
    world.run("mnist-worker-0")
    p = world.step()
    assert world.phase == "Created" and not p.events  # message change only, no transition
    world.run()
    world.advance(5)
    p = world.step()
    assert world.phase == "Running" and [e.reason for e in p.events] == ["JobRunning"]
    assert phases(world) == {"Created": "False", "Running": "True"}
    running = world.condition("Running")
    assert running is not None and running["lastTransitionTime"] == "2026-01-01T12:00:10Z"
    assert world.status["replicaStatuses"]["worker"] == {
        "active": 2,
        "ready": 2,
        "pending": 0,
        "succeeded": 0,
        "failed": 0,
        "restarts": 0,
    }
    world.advance(100)
    world.succeed("mnist-worker-0")
    world.step()
    assert world.phase == "Running"
    world.succeed("mnist-worker-1")
    p = world.step()
    assert world.phase == "Succeeded" and [e.reason for e in p.events] == ["JobSucceeded"]
    assert world.status["completionTime"] == "2026-01-01T12:01:50Z"
    assert list(phases(world).values()).count("True") == 1
    assert p.deletes == []  # cleanPodPolicy None keeps completed pods
    # Finished jobs stay finished and quiet.
    world.advance(1000)
    p = world.plan()
    assert p.status is None and not p.creates and not p.deletes and not p.events


def test_replanning_an_unchanged_world_changes_nothing() -> None:
    world = World(make_job(workers=2))
    world.step()
    world.run()
    world.step()
    world.advance(3600)
    p = world.plan()
    assert p.status is None and not p.events and not p.creates and not p.deletes


def test_chief_success_policy_stops_the_rest() -> None:
    roles = {"chief": replica(1), "worker": replica(2), "ps": replica(1)}
    world = World(make_job(roles=roles, successPolicy="Chief"))
    world.settle()
    world.run()
    world.step()
    world.succeed("mnist-chief-0")
    p = world.step()
    assert world.phase == "Succeeded"
    assert world.condition("Succeeded")["message"] == "chief 0 succeeded"  # type: ignore[index]
    assert sorted(d.name for d in p.deletes) == ["mnist-ps-0", "mnist-worker-0", "mnist-worker-1"]


def test_chief_policy_without_chief_uses_worker_zero() -> None:
    world = World(make_job(workers=3, successPolicy="Chief"))
    world.settle()
    world.run()
    world.succeed("mnist-worker-0")
    p = world.step()
    assert world.phase == "Succeeded"
    assert sorted(d.name for d in p.deletes) == ["mnist-worker-1", "mnist-worker-2"]


def test_all_workers_success_stops_parameter_servers_and_evaluators() -> None:
    roles = {"ps": replica(1), "worker": replica(2), "evaluator": replica(1)}
    world = World(make_job(roles=roles))
    world.settle()
    world.run()
    world.succeed("mnist-worker-0", "mnist-worker-1")
    p = world.step()
    assert world.phase == "Succeeded"
    assert sorted(d.name for d in p.deletes) == ["mnist-evaluator-0", "mnist-ps-0"]


def test_clean_pod_policy_all_deletes_completed_pods_too() -> None:
    world = World(make_job(workers=2, runPolicy={"cleanPodPolicy": "All"}))
    world.settle()
    world.run()
    world.succeed("mnist-worker-0", "mnist-worker-1")
    p = world.step()
    assert sorted(d.name for d in p.deletes) == ["mnist-worker-0", "mnist-worker-1"]
    assert all(d.uid for d in p.deletes)


def test_failed_job_keeps_running_pods_under_none_and_stops_them_under_running() -> None:
    for policy, expected in (("None", []), ("Running", ["mnist-worker-1"]), ("All", None)):
        job = make_job(workers=2, policy="Never", runPolicy={"cleanPodPolicy": policy})
        world = World(job)
        world.settle()
        world.run()
        world.fail("mnist-worker-0", 1)
        p = world.step()
        assert world.phase == "Failed"
        names = sorted(d.name for d in p.deletes)
        assert names == (expected if expected is not None else ["mnist-worker-0", "mnist-worker-1"])


def test_by_default_a_failed_job_frees_its_gpus_and_keeps_its_logs() -> None:
    """No cleanPodPolicy: the pods still running stop (their GPUs are freed), the failed pod
    stays for `kubectl logs`."""
    world = World(make_job(workers=2, policy="Never"))
    world.settle()
    world.run()
    world.fail("mnist-worker-0", 1)
    p = world.step()
    assert world.phase == "Failed"
    assert [(d.name, d.reason) for d in p.deletes] == [("mnist-worker-1", "JobFailed")]


def test_active_deadline_fails_the_job_and_stops_pods() -> None:
    world = World(make_job(workers=2, runPolicy={"activeDeadlineSeconds": 600}))
    p = world.step()
    assert p.requeue_after == 600
    world.run()
    world.advance(300)
    p = world.step()
    assert p.requeue_after == 300
    world.advance(300)
    p = world.step()
    assert world.phase == "Failed"
    failed = world.condition("Failed")
    assert failed is not None and failed["reason"] == "DeadlineExceeded"
    assert sorted(d.name for d in p.deletes) == ["mnist-worker-0", "mnist-worker-1"]
    assert [e.type for e in p.events] == ["Warning"]


def test_ttl_after_finished_deletes_the_job_once_elapsed() -> None:
    world = World(make_job(workers=1, runPolicy={"ttlSecondsAfterFinished": 100}))
    world.settle()
    world.run()
    world.succeed("mnist-worker-0")
    p = world.step()
    assert p.requeue_after == 100 and not p.delete_job
    world.advance(99)
    assert world.plan().requeue_after == 1
    world.advance(1)
    assert world.plan().delete_job


def test_suspend_deletes_pods_keeps_service_and_resume_resets_start_time() -> None:
    world = World(make_job(workers=2, runPolicy={"activeDeadlineSeconds": 600}))
    world.settle()
    world.run()
    world.step()
    world.advance(500)
    world.job["spec"]["runPolicy"]["suspend"] = True
    p = world.step()
    assert world.phase == "Suspended" and [e.reason for e in p.events] == ["JobSuspended"]
    assert sorted(d.name for d in p.deletes) == ["mnist-worker-0", "mnist-worker-1"]
    assert "startTime" not in world.status
    assert world.services and not world.pods
    world.step()  # pod counts drop to zero now that the pods are gone
    world.advance(1000)  # suspended time does not count against the deadline
    p = world.step()
    assert world.phase == "Suspended" and p.status is None and not p.creates
    world.job["spec"]["runPolicy"]["suspend"] = False
    p = world.step()
    assert sorted(o["metadata"]["name"] for o in p.creates) == ["mnist-worker-0", "mnist-worker-1"]
    assert world.phase == "Created"
    assert world.status["startTime"] == world.ts()
    assert p.requeue_after == 600


def test_job_created_suspended_creates_nothing() -> None:
    world = World(make_job(workers=2, runPolicy={"suspend": True}))
    p = world.step()
    assert not p.creates and world.phase == "Suspended"
    assert "startTime" not in world.status


def test_invalid_spec_fails_with_every_error_and_no_children() -> None:
    job = make_job(workers=2)
    job["spec"]["replicaSpecs"]["worker"]["replicas"] = -1
    job["spec"]["runPolicy"] = {"backoffLimit": "many"}
    world = World(job)
    p = world.step()
    assert not p.creates and not p.deletes
    failed = world.condition("Failed")
    assert failed is not None and failed["reason"] == "InvalidSpec"
    assert "spec.replicaSpecs.worker.replicas" in failed["message"]
    assert "spec.runPolicy.backoffLimit" in failed["message"]
    assert [(e.type, e.reason) for e in p.events] == [("Warning", "InvalidSpec")]
    assert world.plan().status is None


def test_garbage_job_objects_never_raise() -> None:
    for job in ({}, {"metadata": None}, {"metadata": {"name": "x"}, "spec": []}, {"status": 3}):
        world = World(job)
        p = world.plan()
        assert not p.creates and p.status is not None and p.status["phase"] == "Failed"


def test_deleted_job_plans_nothing() -> None:
    job = make_job()
    job["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert World(job).plan() == World(job).plan().__class__()


def test_non_elastic_scale_up_recreates_every_pod_and_reports_scaling() -> None:
    world = World(make_job(workers=2))
    world.settle()
    world.run()
    world.step()
    assert world.phase == "Running"
    world.job["spec"]["replicaSpecs"]["worker"]["replicas"] = 3
    world.job["metadata"]["generation"] = 2
    p = world.step()
    assert world.phase == "Scaling" and [e.reason for e in p.events] == ["JobScaling"]
    assert sorted(d.name for d in p.deletes) == ["mnist-worker-0", "mnist-worker-1"]
    assert {d.reason for d in p.deletes} == {"WiringChanged"}
    assert [o["metadata"]["name"] for o in p.creates] == ["mnist-worker-2"]
    assert world.status["observedGeneration"] == 2
    world.settle()
    assert world.phase == "Scaling"  # new pods are still pending
    assert world.env("mnist-worker-0")["WORLD_SIZE"] == "3"
    world.run()
    world.step()
    assert world.phase == "Running" and world.status["restartCount"] == 0


def test_non_elastic_scale_down_deletes_highest_indices_and_recreates_the_rest() -> None:
    world = World(make_job(workers=4))
    world.settle()
    world.run()
    world.step()
    world.job["spec"]["replicaSpecs"]["worker"]["replicas"] = 2
    p = world.step()
    reasons = {d.name: d.reason for d in p.deletes}
    assert reasons == {
        "mnist-worker-0": "WiringChanged",
        "mnist-worker-1": "WiringChanged",
        "mnist-worker-2": "ScaledDown",
        "mnist-worker-3": "ScaledDown",
    }
    world.settle()
    world.run()
    world.step()
    assert world.pod_names() == ["mnist-worker-0", "mnist-worker-1"]
    assert world.phase == "Running"


def test_elastic_scale_up_keeps_pods_running_and_reports_scaling_until_all_run() -> None:
    job = make_job(workers=2, elasticPolicy={"minReplicas": 1, "maxReplicas": 4})
    world = World(job)
    world.settle()
    world.run()
    world.step()
    uids = {n: world.pods[n]["metadata"]["uid"] for n in world.pod_names()}
    world.job["spec"]["replicaSpecs"]["worker"]["replicas"] = 4
    p = world.step()
    assert not p.deletes
    assert sorted(o["metadata"]["name"] for o in p.creates) == ["mnist-worker-2", "mnist-worker-3"]
    assert world.phase == "Scaling"  # never stuck in Running after a scale-up (Kubeflow #1751)
    world.run("mnist-worker-2")
    world.step()
    assert world.phase == "Scaling"
    world.run("mnist-worker-3")
    world.step()
    assert world.phase == "Running"
    assert {n: world.pods[n]["metadata"]["uid"] for n in uids} == uids


def test_elastic_job_runs_at_min_replicas_while_extra_workers_pend() -> None:
    job = make_job(workers=4, elasticPolicy={"minReplicas": 2, "maxReplicas": 4})
    world = World(job)
    world.settle()
    world.run("mnist-worker-0")
    world.step()
    assert world.phase == "Created"
    world.run("mnist-worker-1")
    world.step()
    assert world.phase == "Running"  # DLRover #1175: pending extras do not block the start
    assert world.condition("Running")["message"] == "2 workers running (elastic 1..4)".replace(  # type: ignore[index]
        "1..4", "2..4"
    )


def test_elastic_success_stops_workers_that_never_joined() -> None:
    job = make_job(workers=3, elasticPolicy={"minReplicas": 2, "maxReplicas": 3})
    world = World(job)
    world.settle()
    world.run("mnist-worker-0", "mnist-worker-1")
    world.step()
    world.succeed("mnist-worker-0")
    world.step()
    assert world.phase == "Running"  # worker 1 still running: not done yet
    world.succeed("mnist-worker-1")
    p = world.step()
    assert world.phase == "Succeeded"
    assert [d.name for d in p.deletes] == ["mnist-worker-2"]


def test_lifecycle_events_happen_once_per_transition() -> None:
    world = World(make_job(workers=1))
    seen = []
    for _ in range(3):
        seen += [e.reason for e in world.step().events]
    world.run()
    for _ in range(3):
        seen += [e.reason for e in world.step().events]
    assert seen == ["JobCreated", "JobRunning"]
    assert T0.tzinfo is not None


def test_stuck_pods_are_explained_in_the_condition() -> None:
    world = World(make_job(workers=3))
    world.settle()
    world.pods["mnist-worker-1"]["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        }
    ]
    world.pods["mnist-worker-2"]["status"]["containerStatuses"] = [
        {"name": "trainer", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
    ]
    world.step()
    created = world.condition("Created")
    assert created is not None
    assert created["message"] == (
        "0/3 pods running; mnist-worker-1: Unschedulable: 0/3 nodes are available: "
        "3 Insufficient nvidia.com/gpu.; mnist-worker-2: container 'trainer' ImagePullBackOff"
    )


def test_elastic_scale_down_keeps_the_lower_workers_running() -> None:
    job = make_job(workers=4, elasticPolicy={"minReplicas": 1, "maxReplicas": 4})
    world = World(job)
    world.settle()
    world.run()
    world.step()
    uids = {n: world.pods[n]["metadata"]["uid"] for n in ("mnist-worker-0", "mnist-worker-1")}
    world.job["spec"]["replicaSpecs"]["worker"]["replicas"] = 2
    p = world.apply(world.plan(), finish=False)
    assert sorted((d.name, d.reason) for d in p.deletes) == [
        ("mnist-worker-2", "ScaledDown"),
        ("mnist-worker-3", "ScaledDown"),
    ]
    assert world.phase == "Scaling"  # until the removed workers are gone
    world.fail("mnist-worker-3", 143)  # dying from our deletion: not a failure
    world.step(finish=False)
    assert world.status["restartCount"] == 0
    world.remove("mnist-worker-2")
    world.remove("mnist-worker-3")
    world.step()
    assert world.phase == "Running"
    assert {n: world.pods[n]["metadata"]["uid"] for n in uids} == uids


def test_large_job_plans_every_pod_once() -> None:
    world = World(make_job(workers=2000))
    p = world.step()
    assert len([o for o in p.creates if o["kind"] == "Pod"]) == 2000
    world.run()
    world.step()
    assert world.phase == "Running"


def test_elastic_parameter_server_job_is_refused_by_the_planner() -> None:
    roles = {"ps": replica(1), "worker": replica(2)}
    world = World(make_job(roles=roles, elasticPolicy={"minReplicas": 1, "maxReplicas": 3}))
    p = world.step()
    assert not p.creates
    failed = world.condition("Failed")
    assert failed is not None and failed["reason"] == "InvalidSpec"
    assert failed["message"].startswith("spec is invalid: spec.elasticPolicy: ")


def test_crash_looping_pod_is_named_while_running() -> None:
    world = World(make_job(workers=2))
    world.settle()
    world.run()
    world.step()
    world.pods["mnist-worker-1"]["status"]["containerStatuses"] = [
        {"name": "trainer", "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    ]
    world.step()
    running = world.condition("Running")
    assert running is not None and running["status"] == "True"
    assert running["message"] == (
        "all 2 pods running; mnist-worker-1: container 'trainer' CrashLoopBackOff"
    )
    assert world.status["restartCount"] == 1


def test_long_invalid_spec_messages_are_clipped() -> None:
    job = make_job(workers=1)
    job["spec"]["replicaSpecs"]["worker"]["template"]["spec"]["containers"] = [
        {"name": f"BAD_{i}"} for i in range(60)
    ]
    world = World(job)
    p = world.step()
    failed = world.condition("Failed")
    assert failed is not None and failed["reason"] == "InvalidSpec"
    assert len(failed["message"]) == 1024 and failed["message"].endswith("...")
    assert len(p.events[0].message) == 1024


def test_changing_elastic_bounds_rewires_every_pod() -> None:
    job = make_job(workers=2, elasticPolicy={"minReplicas": 1, "maxReplicas": 4})
    world = World(job)
    world.settle()
    world.run()
    world.step()
    world.job["spec"]["elasticPolicy"]["maxReplicas"] = 8
    p = world.step()
    assert sorted((d.name, d.reason) for d in p.deletes) == [
        ("mnist-worker-0", "WiringChanged"),
        ("mnist-worker-1", "WiringChanged"),
    ]
    assert world.phase == "Scaling"
    assert world.condition("Scaling")["message"].startswith(  # type: ignore[index]
        "recreating pods for a changed cluster layout"
    )
    world.settle()
    assert world.env("mnist-worker-0")["PET_NNODES"] == "1:8"
    world.run()
    world.step()
    assert world.phase == "Running" and world.status["restartCount"] == 0


def test_elastic_job_is_not_running_before_min_workers_have_started() -> None:
    """The demo's early "JobRunning": only pods in phase Running (containers started) count."""
    job = make_job(workers=2, elasticPolicy={"minReplicas": 1, "maxReplicas": 2})
    world = World(job)
    seen = [e.reason for e in world.step().events]
    seen += [e.reason for e in world.step().events]  # worker 1 follows the placed worker 0
    scheduled = {"type": "PodScheduled", "status": "True"}
    creating = {"name": "trainer", "state": {"waiting": {"reason": "ContainerCreating"}}}
    world.pods["mnist-worker-0"]["status"] = {}  # no phase written yet
    world.pods["mnist-worker-1"]["status"] = {
        "phase": "Pending",
        "conditions": [scheduled],
        "containerStatuses": [creating],
    }
    for _ in range(3):
        seen += [e.reason for e in world.step().events]
    world.withheld = {"mnist-worker-0"}  # an index lagging behind shows even less
    seen += [e.reason for e in world.step().events]
    world.withheld = set()
    assert world.phase == "Created" and seen == ["JobCreated"]
    assert world.condition("Created")["message"] == "0/2 pods running"  # type: ignore[index]
    world.run("mnist-worker-1")
    p = world.step()
    assert [e.reason for e in p.events] == ["JobRunning"]
    assert p.events[0].message == "1 worker running (elastic 1..2)"


def test_elastic_job_is_not_running_until_every_other_role_runs() -> None:
    roles = {
        "chief": replica(1),
        "worker": replica(2),
        "evaluator": replica(1),
    }
    job = make_job(roles=roles, elasticPolicy={"minReplicas": 1, "maxReplicas": 2})
    world = World(job)
    world.settle()
    world.run("mnist-worker-0", "mnist-worker-1", "mnist-evaluator-0")
    world.step()
    assert world.phase == "Created"  # every worker runs, the chief does not
    world.run("mnist-chief-0")
    world.step()
    assert world.phase == "Running"
    assert world.condition("Running")["message"] == "2 workers running (elastic 1..2)"  # type: ignore[index]


def test_single_pod_messages_read_as_english() -> None:
    world = World(make_job(workers=1))
    world.settle()
    world.run()
    world.step()
    assert world.condition("Running")["message"] == "1 pod running"  # type: ignore[index]
    world.succeed("mnist-worker-0")
    world.step()
    assert world.condition("Succeeded")["message"] == "the worker succeeded"  # type: ignore[index]
    elastic = World(make_job(workers=2, elasticPolicy={"minReplicas": 1, "maxReplicas": 2}))
    elastic.settle()
    elastic.run("mnist-worker-0")
    elastic.step()
    elastic.succeed("mnist-worker-0")
    elastic.step()
    message = elastic.condition("Succeeded")["message"]  # type: ignore[index]
    assert message == "1 elastic worker succeeded"
