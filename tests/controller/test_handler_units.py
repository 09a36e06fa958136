"""Unit tests of the work queue and the expectations (the handlers are in test_handlers.py)."""

from __future__ import annotations

import asyncio

from elastrain.controller.expectations import Expectations
from elastrain.controller.queue import WorkQueue

KEY = ("ns", "job")


def test_queue_deduplicates_and_never_hands_out_a_key_twice() -> None:
    async def scenario() -> None:
        q: WorkQueue[tuple[str, str]] = WorkQueue()
        for _ in range(5):
            q.add(KEY)
        q.add(("ns", "other"))
        assert len(q) == 2
        key = await q.get()
        assert key == KEY
        q.add(KEY)  # an event while KEY is processed: deferred, not handed to a second worker
        assert await q.get() == ("ns", "other")
        assert len(q) == 0
        q.done(KEY)  # ...and queued again once its worker is done
        assert await q.get() == KEY

    asyncio.run(scenario())


def test_add_after_keeps_the_earliest_timer() -> None:
    async def scenario() -> None:
        q: WorkQueue[tuple[str, str]] = WorkQueue()
        q.add_after(KEY, 3600)
        q.add_after(KEY, 0.01)
        q.add_after(KEY, 7200)
        assert await asyncio.wait_for(q.get(), timeout=30) == KEY
        q.done(KEY)
        q.close()
        assert len(q) == 0

    asyncio.run(scenario())


def test_backoff_doubles_up_to_the_cap_and_forget_resets_it() -> None:
    async def scenario() -> None:
        q: WorkQueue[tuple[str, str]] = WorkQueue(base_delay=1, max_delay=5)
        assert [q.backoff(KEY) for _ in range(5)] == [1, 2, 4, 5, 5]
        q.forget(KEY)
        assert q.backoff(KEY) == 1
        q.close()

    asyncio.run(scenario())


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_expectations_hold_until_every_write_is_observed() -> None:
    clock = Clock()
    exp = Expectations(timeout=10, clock=clock)
    exp.expect_status(KEY, "5")
    exp.expect_creates(KEY, [("Pod", "job-worker-0"), ("Pod", "job-worker-1")])
    exp.expect_deletes(KEY, [(("Pod", "job-worker-2"), "uid-2")])
    assert exp.unmet(KEY) == 10
    exp.observe_job(KEY, "5")  # the version we wrote against: not our write yet
    exp.observe_job(KEY, "6")
    exp.observe_child(KEY, "Pod", {"metadata": {"name": "job-worker-0"}}, deleted=False)
    exp.lower(KEY, ("Pod", "job-worker-1"))  # its create found it already there
    # A deleted pod counts as gone once terminating (or deleted, or replaced by another uid).
    exp.observe_child(KEY, "Pod", {"metadata": {"name": "job-worker-2", "uid": "uid-2"}}, False)
    assert exp.unmet(KEY) is not None
    terminating = {"name": "job-worker-2", "uid": "uid-2", "deletionTimestamp": "t"}
    exp.observe_child(KEY, "Pod", {"metadata": terminating}, deleted=False)
    assert exp.unmet(KEY) is None


def test_a_deleted_job_is_held_until_deleted_or_shown_terminating() -> None:
    exp = Expectations(timeout=10, clock=Clock())
    exp.expect_job_deletion(KEY)
    exp.observe_job(KEY, "8")  # a late update of the job (its pods' status) is not its deletion
    assert exp.unmet(KEY) is not None
    exp.observe_job(KEY, "9", terminating=True)  # someone's finalizer holds it: reconcile on
    assert exp.unmet(KEY) is None


def test_expectations_expire_so_a_missed_event_cannot_stall_a_job() -> None:
    clock = Clock()
    exp = Expectations(timeout=10, clock=clock)
    exp.expect_creates(KEY, [("Service", "job")])
    clock.now = 9.5
    assert exp.unmet(KEY) == 0.5
    clock.now = 10.0
    assert exp.unmet(KEY) is None
    assert exp.unmet(KEY) is None


def test_expecting_nothing_holds_nothing() -> None:
    exp = Expectations(timeout=10, clock=Clock())
    exp.expect_creates(KEY, [])
    exp.expect_deletes(KEY, [])
    assert exp.unmet(KEY) is None
    exp.expect_status(KEY, "7")
    exp.lower(KEY, status=True)
    assert exp.unmet(KEY) is None
