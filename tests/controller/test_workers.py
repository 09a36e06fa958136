"""The workers: every reconcile outcome ends in a defined next step, and a worker never dies.

The real planner plans the job; only the API server is fake (it fails on demand).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from controller_rig import KEY, Rig, rig
from elastrain.controller import reconcile
from elastrain.controller.workers import Workers
from elastrain.planner.model import Observed, Plan


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def process(r: Rig, times: int = 1) -> float:
    """Run ``workers.process(KEY)`` ``times`` times; returns the back-off the next failure gets."""

    async def scenario() -> float:
        workers = r.workers(base_delay=30)
        for _ in range(times):
            await workers.process(KEY)
        delay = workers.queue.backoff(KEY)
        workers.queue.close()
        return delay

    return asyncio.run(scenario())


def warnings(r: Rig, reason: str) -> list[dict[str, Any]]:
    return [e for e in r.kube.events() if e["type"] == "Warning" and e["reason"] == reason]


def test_a_reconcile_applies_the_real_plan_and_resets_the_backoff() -> None:
    r = rig()
    assert process(r) == 30  # no failure recorded: the next one starts from the base delay
    log = r.kube.log()
    assert log[0] == "GET discovery None"  # is the PodGroup CRD served? (404: no)
    assert log[1] == "PATCH trainingjobs/status mnist"
    assert {"POST services mnist", "POST pods mnist-worker-0", "POST pods mnist-worker-1"} <= set(
        log
    )
    assert r.sample("elastrain_reconcile_duration_seconds_count") == 1
    assert r.sample("elastrain_reconcile_errors_total", error="ApplyFailed") == 0


def test_failed_creates_back_off_and_count_without_a_second_warning() -> None:
    r = rig()
    r.kube.fail("POST", "pods", 422)
    assert process(r) == 60  # one failure: the next back-off is doubled
    # Counted by the class of the first failure; the Event per failed pod is the warning.
    assert r.sample("elastrain_reconcile_errors_total", error="Invalid") == 1
    assert len(warnings(r, "FailedCreatePod")) == 2  # one per pod
    assert warnings(r, "ReconcileError") == []


def test_an_api_error_backs_off_and_warns_on_the_job() -> None:
    r = rig()
    r.kube.fail("PATCH", "trainingjobs/status", 500)
    assert process(r, times=2) == 120  # 30, 60, then 120: backing off, not looping
    assert r.sample("elastrain_reconcile_errors_total", error="Transient") == 2
    (warning,) = warnings(r, "ReconcileError")
    assert warning["message"].startswith("API error: 500")
    assert warning["involvedObject"]["name"] == "mnist"
    # The second failure bumped the first Event's count instead of posting another.
    bumps = [q for q in r.kube.requests if q.method == "PATCH" and q.resource == "events"]
    assert [q.body["count"] for q in bumps] == [2]
    assert not any(x.startswith("POST pods") for x in r.kube.log())


def test_a_planner_bug_backs_off_and_warns_on_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    def exploding(job: dict[str, Any], observed: Observed) -> Plan:
        raise ZeroDivisionError("a planner bug")

    monkeypatch.setattr(reconcile, "plan", exploding)
    r = rig()
    assert process(r) == 60
    assert r.sample("elastrain_reconcile_errors_total", error="ZeroDivisionError") == 1
    (warning,) = warnings(r, "ReconcileError")
    assert warning["message"] == "internal error: ZeroDivisionError: a planner bug"


def test_a_gone_job_is_dropped() -> None:
    r = rig()
    r.store_jobs.clear()

    async def scenario() -> None:
        workers = r.workers(base_delay=30)
        workers.queue.backoff(KEY)  # a failure of the job when it still existed
        await workers.process(KEY)
        assert workers.queue.backoff(KEY) == 30  # its back-off was dropped with it
        workers.queue.close()

    asyncio.run(scenario())
    assert r.kube.requests == []


def test_a_job_is_held_until_our_writes_are_seen() -> None:
    r = rig()
    process(r, times=2)
    patches = [x for x in r.kube.log() if x.startswith("PATCH trainingjobs")]
    assert len(patches) == 1  # the second reconcile waited for the watch to show the first


def test_a_worker_survives_failures_of_its_own_and_keeps_working() -> None:
    r = rig()
    r.kube.fail("PATCH", "trainingjobs/status", 500)
    # The Warning about that failure then fails too, with a bug below us (not an API error):
    # process() lets it out, and the worker loop itself must absorb it.
    r.kube.crash("POST", "events", RuntimeError("event sink broke"))

    def status_writes() -> int:
        return sum(x == "PATCH trainingjobs/status mnist" for x in r.kube.log())

    async def scenario() -> None:
        workers: Workers = r.workers(base_delay=0.01)
        workers.start()
        try:
            workers.queue.add(KEY)
            await until(lambda: status_writes() >= 3, "three failed attempts")
            r.kube.heal()
            await until(lambda: "POST pods mnist-worker-1" in r.kube.log(), "the job reconciled")
        finally:
            await workers.stop()

    asyncio.run(scenario())
    assert r.sample("elastrain_reconcile_errors_total", error="Transient") >= 3
