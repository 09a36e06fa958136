"""status.progress from the trainer's readings, the Stalled condition, and the transitions the
recovery and scaling metrics count (Replaced, Scaled, ScaleCompleted)."""

from __future__ import annotations

import math
from typing import Any

from elastrain.planner.model import TrainerSample
from elastrain.planner.training import human_duration, next_progress
from planner_world import T0, World, make_job, replica


def running_world(workers: int = 2, **spec: Any) -> World:
    world = World(make_job(workers=workers, **spec))
    world.step()
    world.run()
    world.settle()
    assert world.phase == "Running"
    return world


def test_progress_appears_with_percent_and_a_rate_based_eta() -> None:
    world = running_world()
    world.report(step=10, total=100, loss=0.9)
    world.step()
    progress = world.status["progress"]
    assert progress["step"] == 10 and progress["percent"] == 10 and progress["loss"] == 0.9
    assert progress["worldSize"] == 2 and progress["samplesPerSecond"] == 64.0
    assert "estimatedRemainingSeconds" not in progress  # one reading gives no rate yet
    world.advance(15)
    world.report(step=25, total=100, loss=0.7)
    world.step()
    progress = world.status["progress"]
    # 15 steps in 15 s: 75 steps left take 75 s.
    assert (progress["percent"], progress["estimatedRemainingSeconds"]) == (25, 75)
    assert progress["eta"] == "1m15s"
    assert progress["lastStepTime"] == progress["lastUpdateTime"] == world.ts()


def test_an_unchanged_reading_writes_nothing_and_an_older_one_is_ignored() -> None:
    world = running_world()
    world.report(step=10)
    world.step()
    world.advance(5)
    assert world.plan().status is None  # the same reading again: no status write
    stored = world.status["progress"]
    assert next_progress(stored, TrainerSample(at=T0, step=3)) == stored


def test_last_step_time_moves_only_when_the_step_does() -> None:
    world = running_world()
    world.report(step=10)
    world.step()
    first = world.status["progress"]["lastStepTime"]
    world.advance(15)
    world.report(step=10, loss=0.25)  # a newer reading, same step
    world.step()
    progress = world.status["progress"]
    assert progress["lastStepTime"] == first and progress["lastUpdateTime"] == world.ts()


def test_non_finite_and_unknown_values_are_left_out() -> None:
    sample = TrainerSample(at=T0, step=5, total_steps=None, loss=math.nan, world_size=None)
    progress = next_progress(None, sample)
    assert progress is not None
    assert set(progress) == {"step", "lastUpdateTime", "lastStepTime"}


def test_a_running_job_without_steps_for_stall_after_is_stalled_then_resumes() -> None:
    world = running_world()
    world.stall_after = 600
    world.report(step=10)
    p = world.step()
    assert p.requeue_after is not None and p.requeue_after <= 600  # the stall check is timed
    world.advance(599)
    assert world.plan().status is None
    world.advance(2)
    p = world.step()
    stalled = world.condition("Stalled")
    assert stalled is not None and stalled["status"] == "True"
    assert stalled["reason"] == "NoProgress" and "step 10" in stalled["message"]
    assert [(e.type, e.reason) for e in p.events] == [("Warning", "TrainingStalled")]
    assert [t.kind for t in p.transitions] == ["Stalled"]
    assert world.phase == "Running"  # stalled is a condition, not a phase
    assert world.plan().status is None  # reported once
    world.advance(15)
    world.report(step=11)
    p = world.step()
    stalled = world.condition("Stalled")
    assert stalled is not None
    assert (stalled["status"], stalled["reason"]) == ("False", "Progressing")
    assert [e.reason for e in p.events] == ["TrainingResumed"]


def test_no_stall_without_progress_ever_reported_or_when_disabled() -> None:
    world = running_world()
    world.stall_after = 60
    world.advance(3600)
    world.step()
    assert world.condition("Stalled") is None
    world.stall_after = None
    world.report(step=1)
    world.step()
    world.advance(3600)
    world.step()
    assert world.condition("Stalled") is None


def test_the_stall_clock_restarts_when_the_job_runs_again() -> None:
    world = running_world()
    world.stall_after = 600
    world.report(step=10)
    world.step()
    world.advance(500)
    world.fail("mnist-worker-1")
    world.settle()
    assert world.phase == "Restarting"
    world.advance(900)  # longer than stall_after, but the job was not Running
    world.settle()
    assert world.condition("Stalled") is None
    world.run()
    world.settle()
    assert world.phase == "Running"
    world.advance(300)
    world.step()
    assert world.condition("Stalled") is None  # counted from Running again, not the old step


def test_a_stalled_job_that_succeeds_is_no_longer_stalled() -> None:
    world = running_world()
    world.stall_after = 60
    world.report(step=10)
    world.step()
    world.advance(61)
    world.step()
    assert world.condition("Stalled")["status"] == "True"  # type: ignore[index]
    world.succeed("mnist-worker-0", "mnist-worker-1")
    world.settle()
    assert world.phase == "Succeeded"
    assert world.condition("Stalled")["status"] == "False"  # type: ignore[index]


def test_a_replacement_reports_the_time_since_the_failure_once() -> None:
    world = running_world(runPolicy={"restartBackoff": {"initialSeconds": 10, "maxSeconds": 60}})
    world.fail("mnist-worker-1")
    world.step()
    world.advance(10)
    replaced = []
    for _ in range(5):
        p = world.step()
        replaced += [t for t in p.transitions if t.kind == "Replaced"]
    assert len(replaced) == 1
    (t,) = replaced
    assert t.reason == "worker" and t.since is not None
    assert (t.at - t.since).total_seconds() == 10


def test_a_disrupted_pod_reports_its_replacement_too() -> None:
    world = running_world()
    world.fail("mnist-worker-0", disruption="EvictionByEvictionAPI")
    replaced = [t for _ in range(4) for t in world.step().transitions if t.kind == "Replaced"]
    assert [t.reason for t in replaced] == ["worker"]


def test_scale_commands_are_reported_with_direction_and_their_completion() -> None:
    elastic = {"minReplicas": 1, "maxReplicas": 4}
    world = running_world(elasticPolicy=elastic)
    world.job["spec"]["replicaSpecs"]["worker"]["replicas"] = 4
    p = world.step()
    assert [(t.kind, t.reason) for t in p.transitions if t.kind == "Scaled"] == [("Scaled", "Up")]
    world.advance(7)
    world.run()
    done = [t for _ in range(3) for t in world.step().transitions if t.kind == "ScaleCompleted"]
    assert len(done) == 1 and done[0].since is not None
    assert (done[0].at - done[0].since).total_seconds() == 7
    world.job["spec"]["replicaSpecs"]["worker"]["replicas"] = 2
    scaled = [t for _ in range(3) for t in world.step().transitions if t.kind == "Scaled"]
    assert [t.reason for t in scaled] == ["Down"]


def test_a_resumed_job_is_no_scale() -> None:
    world = running_world()
    world.job["spec"]["runPolicy"] = {"suspend": True}
    world.settle()
    world.job["spec"]["replicaSpecs"]["worker"] = replica(3)
    world.job["spec"]["runPolicy"] = {"suspend": False}
    kinds = []
    for _ in range(4):
        kinds += [t.kind for t in world.step().transitions]
        world.run()
    assert "Scaled" not in kinds and "ScaleCompleted" not in kinds


def test_human_duration() -> None:
    cases = {0: "0s", 59: "59s", 60: "1m", 250: "4m10s", 3600: "1h", 3720: "1h2m", 90000: "1d1h"}
    assert {s: human_duration(s) for s in cases} == cases
