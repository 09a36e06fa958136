"""A child the API server refuses as invalid fails the job after a bounded number of tries."""

from __future__ import annotations

from elastrain.planner.rejections import REASON, REJECTION_LIMIT
from planner_world import World, make_job

REFUSAL = 'Pod "mnist-worker-1" is invalid: spec.initContainers[0].name: Invalid value: "Bad"'


def test_a_refused_template_fails_the_job_with_the_servers_words() -> None:
    world = World(make_job(workers=2))
    world.refuse["mnist-worker-1"] = REFUSAL
    tries = 0
    for _ in range(10):
        p = world.step()
        tries += sum(o["metadata"]["name"] == "mnist-worker-1" for o in p.creates)
        if world.phase == "Failed":
            break
    assert tries == REJECTION_LIMIT
    failed = world.condition("Failed")
    assert failed is not None and failed["reason"] == REASON
    assert REFUSAL in failed["message"] and f"({REJECTION_LIMIT} attempts)" in failed["message"]
    assert any(e.reason == REASON for e in p.events)
    assert not world.step().creates  # a failed job tries no more


def test_fewer_refusals_than_the_limit_leave_the_job_running() -> None:
    world = World(make_job(workers=2))
    world.refuse["mnist-worker-1"] = REFUSAL
    for _ in range(REJECTION_LIMIT - 1):
        world.step()
    del world.refuse["mnist-worker-1"]  # e.g. an admission webhook that changed its mind
    world.settle()
    world.run()
    world.step()
    assert world.phase == "Running"
    assert world.status["tracking"]["rejected"]["count"] == REJECTION_LIMIT - 1


def test_an_edited_spec_starts_the_count_over() -> None:
    world = World(make_job(workers=2))
    world.refuse["mnist-worker-1"] = REFUSAL
    for _ in range(REJECTION_LIMIT - 1):
        world.step()
    world.job["metadata"]["generation"] = 2  # the user fixed (or tried to fix) the template
    world.step()
    assert world.phase != "Failed"
    assert world.status["tracking"]["rejected"] == {
        "count": 1,
        "generation": 2,
        "message": f"Pod mnist-worker-1: {REFUSAL}",
    }
