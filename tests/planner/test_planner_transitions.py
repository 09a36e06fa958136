"""Plan.transitions: what each plan's status write changes, reported once, fed to the metrics.

The property tests check every plan's transitions against the status change they describe
(``transition_oracle``); these follow named histories through to the counters.
"""

from __future__ import annotations

from datetime import timedelta

from elastrain.metrics.registry import Metrics
from elastrain.planner.model import Plan, Transition
from planner_world import T0, World, make_job

# The job was created this long before the first reconcile (T0).
CREATED = T0 - timedelta(seconds=2)


def kinds(p: Plan) -> list[tuple[str, str, bool]]:
    return [(t.kind, t.reason, t.first_time) for t in p.transitions]


def record_all(world: World, metrics: Metrics, steps: int = 1) -> list[Transition]:
    """Reconcile ``steps`` times, counting what each written status carries, as reconcile does."""
    seen: list[Transition] = []
    for _ in range(steps):
        p = world.step()
        if p.status is not None:
            metrics.record(p.transitions, "ns", CREATED)
        seen += p.transitions
    return seen


def value(metrics: Metrics, name: str, **labels: str) -> float:
    got = metrics.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def test_a_job_that_runs_and_succeeds_reports_each_transition_once() -> None:
    world = World(make_job(workers=2))
    metrics = Metrics()
    p = world.step()
    assert kinds(p) == [("Started", "", True), ("Created", "JobCreated", True)]
    assert {t.at for t in p.transitions} == {T0}
    metrics.record(p.transitions, "ns", CREATED)
    assert record_all(world, metrics, 3) == []  # nothing changed: nothing to count
    world.run()
    world.advance(28.7)  # transitions carry the instant as written: whole seconds
    p = world.step()
    assert kinds(p) == [("Running", "JobRunning", True)]
    assert p.transitions[0].at == T0 + timedelta(seconds=28)
    metrics.record(p.transitions, "ns", CREATED)
    world.succeed("mnist-worker-0", "mnist-worker-1")
    assert [t.kind for t in record_all(world, metrics, 3)] == ["Succeeded"]
    assert value(metrics, "elastrain_jobs_created_total", namespace="ns") == 1
    assert value(metrics, "elastrain_jobs_succeeded_total", namespace="ns") == 1
    assert value(metrics, "elastrain_job_to_pod_creation_seconds_count") == 1
    assert value(metrics, "elastrain_job_to_pod_creation_seconds_sum") == 2
    assert value(metrics, "elastrain_job_time_to_running_seconds_count") == 1
    assert value(metrics, "elastrain_job_time_to_running_seconds_sum") == 30


def test_each_entry_into_restarting_is_one_transition_and_running_again_is_not_first() -> None:
    world = World(make_job(workers=1, runPolicy={"restartBackoff": {"initialSeconds": 0}}))
    metrics = Metrics()
    world.settle()
    world.run()
    record_all(world, metrics)
    for attempt in range(2):
        world.fail("mnist-worker-0", 1)
        p = world.step()
        assert kinds(p) == [("Restarting", "PodRecreating", attempt == 0)]
        metrics.record(p.transitions, "ns", CREATED)
        world.settle()  # the failed pod is deleted and recreated
        world.run()
        p = world.step()
        assert kinds(p) == [("Running", "JobRunning", False)]
    labels = {"namespace": "ns", "reason": "PodRecreating"}
    assert value(metrics, "elastrain_jobs_restarted_total", **labels) == 2


def test_a_resumed_job_is_created_and_started_again() -> None:
    world = World(make_job(workers=1))
    world.settle()
    world.job["spec"]["runPolicy"] = {"suspend": True}
    p = world.step()
    assert kinds(p) == [("Suspended", "JobSuspended", True)]
    world.settle()
    world.advance(10)
    world.job["spec"]["runPolicy"] = {"suspend": False}
    p = world.step()
    # Not the first time for either: the metrics count the job once, and its latency to
    # pods once (the first start), never with the suspended time in it.
    assert kinds(p) == [("Started", "", False), ("Created", "JobCreated", False)]
    assert p.transitions[0].at == T0 + timedelta(seconds=10)


def test_suspend_and_resume_count_the_job_and_its_latency_once() -> None:
    """Regression: a resumed job was counted as created twice, and its time to pods observed
    again with the suspended time in it."""
    world = World(make_job(workers=1))
    metrics = Metrics()
    metrics.record(world.step().transitions, "ns", CREATED)
    world.settle()
    world.job["spec"]["runPolicy"] = {"suspend": True}
    metrics.record(world.step().transitions, "ns", CREATED)
    world.settle()
    world.advance(600)
    world.job["spec"]["runPolicy"] = {"suspend": False}
    metrics.record(world.step().transitions, "ns", CREATED)
    assert value(metrics, "elastrain_jobs_created_total", namespace="ns") == 1
    assert value(metrics, "elastrain_job_to_pod_creation_seconds_count") == 1


def test_a_job_created_suspended_observes_no_creation_latency() -> None:
    """Its pods wait for the user, not for the operator: no job-to-pods latency at all."""
    world = World(make_job(workers=1, runPolicy={"suspend": True}))
    metrics = Metrics()
    metrics.record(world.step().transitions, "ns", CREATED)
    world.settle()
    world.advance(60)
    world.job["spec"]["runPolicy"] = {"suspend": False}
    p = world.step()
    assert ("Started", "", False) in kinds(p)
    metrics.record(p.transitions, "ns", CREATED)
    assert value(metrics, "elastrain_job_to_pod_creation_seconds_count") == 0


def test_a_failed_job_reports_its_reason() -> None:
    world = World(make_job(workers=1, policy="Never"))
    world.settle()
    world.run()
    world.step()
    world.fail("mnist-worker-0", 1)
    p = world.step()
    assert kinds(p) == [("Failed", "PodFailed", True)]
    metrics = Metrics()
    metrics.record(p.transitions, "ns", CREATED)
    assert value(metrics, "elastrain_jobs_failed_total", namespace="ns", reason="PodFailed") == 1


def test_an_invalid_spec_is_a_failed_transition() -> None:
    job = make_job(workers=1)
    job["spec"]["replicaSpecs"]["worker"]["replicas"] = -1
    world = World(job)
    p = world.step()
    assert kinds(p) == [("Failed", "InvalidSpec", True)]
    assert world.plan().transitions == []


def test_a_job_waiting_for_the_pod_group_crd_is_created_but_not_started() -> None:
    world = World(make_job(workers=1, runPolicy={"schedulingPolicy": {"queue": "q"}}))
    p = world.step()
    assert kinds(p) == [("Created", "PodGroupCRDMissing", True)]
    world.crd = True
    p = world.step()
    # A new reason within Created is an Event, not a transition; the pods start now.
    assert kinds(p) == [("Started", "", True)]
    assert [e.reason for e in p.events] == ["JobCreated"]
