"""The apply order and its failure paths: the real Reconciler.apply with hand-made Plans.

The order is the planner's contract (docs/operator.md, "Reconcile design"): status, deletes,
creates, events, job deletion. Each failure path is driven by making the fake API server
answer one request with an error code.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from controller_rig import JOB_UID, KEY, NS, child, make_job, rig
from elastrain.api.job_status import JobStatus
from elastrain.controller.reconcile import ApplyFailed, Outcome
from elastrain.kube import errors
from elastrain.planner.model import Delete, Event, Observed, Plan, Transition

NOW = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)
RUNNING: JobStatus = {"phase": "Running"}


def observed(*pods: dict[str, Any]) -> Observed:
    return Observed(now=NOW, pods=list(pods))


def full_plan(**overrides: Any) -> Plan:
    """Every kind of step: a status, two deletes, two creates, an event, the job's deletion."""
    fields: dict[str, Any] = {
        "status": RUNNING,
        "deletes": [
            Delete("Pod", "mnist-worker-2", "uid-w2", "Scaled"),
            Delete("Pod", "mnist-worker-3", "uid-w3", "Scaled"),
        ],
        "creates": [child("Pod", "mnist-worker-0"), child("Pod", "mnist-worker-1")],
        "events": [Event("Normal", "Running", "all workers run")],
        "delete_job": True,
        "requeue_after": 42.0,
    }
    fields.update(overrides)
    return Plan(**fields)


def apply(r: Any, plan: Plan, job: dict[str, Any] | None = None) -> Outcome:
    pods = [child("Pod", "mnist-worker-2", "uid-w2"), child("Pod", "mnist-worker-3", "uid-w3")]
    outcome: Outcome = asyncio.run(
        r.reconciler.apply(job or make_job(status={}), observed(*pods), plan)
    )
    return outcome


def test_status_then_deletes_then_creates_then_events_then_the_job() -> None:
    r = rig()
    outcome = apply(r, full_plan())
    assert outcome == Outcome(requeue_after=42.0)
    log = r.kube.log()
    assert log[0] == "PATCH trainingjobs/status mnist"
    # Children of one job go out together: any order within a step, never across steps.
    assert sorted(log[1:3]) == ["DELETE pods mnist-worker-2", "DELETE pods mnist-worker-3"]
    assert sorted(log[3:5]) == ["POST pods mnist-worker-0", "POST pods mnist-worker-1"]
    assert log[5].startswith("POST events mnist.")
    assert log[6] == "DELETE trainingjobs mnist"
    assert len(log) == 7
    status_write = r.kube.requests[0]
    assert status_write.content_type == "application/merge-patch+json"
    assert status_write.body == {"metadata": {"resourceVersion": "7"}, "status": RUNNING}
    deletes = {q.name: q.body["preconditions"] for q in r.kube.requests[1:3]}
    assert deletes == {"mnist-worker-2": {"uid": "uid-w2"}, "mnist-worker-3": {"uid": "uid-w3"}}
    assert r.kube.requests[6].body["preconditions"] == {"uid": JOB_UID}
    (event,) = r.kube.events()
    assert (event["type"], event["reason"], event["message"]) == (
        "Normal",
        "Running",
        "all workers run",
    )
    assert event["involvedObject"]["kind"] == "TrainingJob"
    assert r.sample("elastrain_pods_created_total", namespace=NS) == 2
    assert r.sample("elastrain_pods_deleted_total", namespace=NS) == 2
    # Our writes are not in the indexes yet: the next reconcile of the job waits for them.
    assert r.expectations.unmet(KEY) is not None


def test_an_unchanged_status_is_not_written() -> None:
    r = rig()
    apply(r, Plan(status=RUNNING, creates=[child("Service", "mnist")]), make_job(dict(RUNNING)))
    assert r.kube.log() == ["POST services mnist"]


def test_a_stale_status_stops_the_plan_before_any_child_and_requeues() -> None:
    r = rig()
    r.kube.fail("PATCH", "trainingjobs/status", 409)
    at = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    plan = full_plan(transitions=[Transition("Created", "JobCreated", at, first_time=True)])
    outcome = apply(r, plan)
    assert outcome == Outcome(requeue_after=1.0)
    assert r.kube.log() == ["PATCH trainingjobs/status mnist"]  # no child touched, no event
    # The refused status carried a transition: the other writer's win counts it, not us.
    assert r.sample("elastrain_jobs_created_total", namespace=NS) == 0
    # Nothing of ours is outstanding: the newer job's event may reconcile at once.
    assert r.expectations.unmet(KEY) is None


def test_a_written_status_counts_its_transitions() -> None:
    r = rig()
    at = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    apply(
        r,
        Plan(
            status=RUNNING, transitions=[Transition("Created", "JobCreated", at, first_time=True)]
        ),
    )
    assert r.sample("elastrain_jobs_created_total", namespace=NS) == 1


def test_a_job_gone_under_its_status_write_is_gone() -> None:
    r = rig()
    r.kube.fail("PATCH", "trainingjobs/status", 404)
    assert apply(r, full_plan()) == Outcome(gone=True)
    assert r.kube.log() == ["PATCH trainingjobs/status mnist"]
    assert r.expectations.unmet(KEY) is None


@pytest.mark.parametrize(("code", "error"), [(500, errors.Transient), (429, errors.Transient)])
def test_a_failed_status_write_raises_and_touches_nothing(
    code: int, error: type[errors.ApiError]
) -> None:
    r = rig()
    r.kube.fail("PATCH", "trainingjobs/status", code)
    with pytest.raises(error):
        apply(r, full_plan())
    assert r.kube.log() == ["PATCH trainingjobs/status mnist"]
    assert r.expectations.unmet(KEY) is None  # the write we expected will never be seen


@pytest.mark.parametrize(
    ("code", "error"),
    [(422, "Invalid"), (500, "Transient"), (429, "Transient"), (403, "Forbidden")],
)
def test_a_failed_create_is_a_warning_and_the_other_creates_still_run(
    code: int, error: str
) -> None:
    r = rig()
    r.kube.fail("POST", "pods", code, name="mnist-worker-1")
    creates = [child("Pod", f"mnist-worker-{i}") for i in range(3)]
    plan = Plan(creates=creates, events=[Event("Normal", "Created", "pods created")])
    with pytest.raises(ApplyFailed) as failed:
        apply(r, plan)
    assert [type(f).__name__ for f in failed.value.failures] == [error]
    posts = sorted(x for x in r.kube.log() if x.startswith("POST pods"))
    assert posts == [f"POST pods mnist-worker-{i}" for i in range(3)]
    warnings = [e for e in r.kube.events() if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["FailedCreatePod"]
    assert "mnist-worker-1" in warnings[0]["message"]
    assert "told to fail" in warnings[0]["message"]  # the server's Status message
    assert warnings[0]["involvedObject"]["name"] == "mnist"
    assert warnings[0]["involvedObject"]["uid"] == JOB_UID
    # The plan's own events still went out, after the creates.
    assert r.kube.log()[-1].startswith("POST events")
    assert r.kube.events()[-1]["reason"] == "Created"
    assert r.sample("elastrain_pods_created_total", namespace=NS) == 2
    assert r.sample("elastrain_pod_create_failures_total", namespace=NS, error=error) == 1
    # The failed create is not waited for; the two that succeeded are.
    pending = r.expectations.describe(KEY)
    assert "mnist-worker-1" not in pending
    assert "mnist-worker-0" in pending and "mnist-worker-2" in pending


def test_a_failed_create_of_another_kind_names_that_kind() -> None:
    r = rig()
    r.kube.fail("POST", "services", 422)
    with pytest.raises(ApplyFailed):
        apply(r, Plan(creates=[child("Service", "mnist")]))
    assert [e["reason"] for e in r.kube.events()] == ["FailedCreateService"]
    assert r.sample("elastrain_pod_create_failures_total", namespace=NS, error="Invalid") == 0


def test_already_exists_on_create_is_success() -> None:
    r = rig()
    r.kube.fail("POST", "pods", 409, name="mnist-worker-0", reason="AlreadyExists")
    outcome = apply(
        r, Plan(creates=[child("Pod", "mnist-worker-0"), child("Pod", "mnist-worker-1")])
    )
    assert outcome == Outcome()
    assert r.kube.events() == []
    assert r.sample("elastrain_pods_created_total", namespace=NS) == 1  # only the new one
    pending = r.expectations.describe(KEY)  # the existing one's event may be long past
    assert "mnist-worker-0" not in pending and "mnist-worker-1" in pending


@pytest.mark.parametrize("code", [404, 409])
def test_a_delete_that_finds_the_pod_gone_is_success(code: int) -> None:
    r = rig()
    r.kube.fail("DELETE", "pods", code)
    outcome = apply(r, Plan(deletes=[Delete("Pod", "mnist-worker-2", "uid-w2", "Scaled")]))
    assert outcome == Outcome()
    assert r.kube.events() == []
    assert r.sample("elastrain_pods_deleted_total", namespace=NS) == 0
    assert r.expectations.unmet(KEY) is None


def test_a_failed_delete_is_a_warning_about_that_pod() -> None:
    r = rig()
    r.kube.fail("DELETE", "pods", 500, name="mnist-worker-3")
    plan = full_plan(delete_job=False)
    with pytest.raises(ApplyFailed) as failed:
        apply(r, plan)
    assert [type(f) for f in failed.value.failures] == [errors.Transient]
    # Its Warning belongs to the delete step; the creates still ran, after it.
    log = r.kube.log()
    assert log[3].startswith("POST events mnist-worker-3.")
    assert sorted(log[4:6]) == ["POST pods mnist-worker-0", "POST pods mnist-worker-1"]
    (warning,) = [e for e in r.kube.events() if e["type"] == "Warning"]
    assert warning["reason"] == "FailedDeletePod"
    assert "(Scaled)" in warning["message"]
    involved = warning["involvedObject"]
    assert (involved["kind"], involved["name"], involved["uid"]) == (
        "Pod",
        "mnist-worker-3",
        "uid-w3",
    )
    assert "mnist-worker-3" not in r.expectations.describe(KEY)
    assert r.sample("elastrain_pods_deleted_total", namespace=NS) == 1


def test_after_deleting_the_job_its_reconciles_wait_for_the_deletion_event() -> None:
    """The TTL deletes the job; its pods' deletion events then re-queue it while the index still
    holds the job, and a re-plan would write a status to an object that is gone (404)."""
    r = rig()
    apply(r, Plan(delete_job=True))
    assert r.expectations.unmet(KEY) is not None
    assert "job-deleted=True" in r.expectations.describe(KEY)
    r.expectations.forget(KEY)  # the DELETED event
    assert r.expectations.unmet(KEY) is None


def test_a_job_already_gone_is_not_waited_for() -> None:
    r = rig()
    r.kube.fail("DELETE", "trainingjobs", 404)
    assert apply(r, Plan(delete_job=True)) == Outcome()
    assert r.expectations.unmet(KEY) is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


RUNNING_WITH_COUNTS: JobStatus = {
    "phase": "Running",
    "conditions": [
        {"type": "Running", "status": "True", "reason": "Running", "message": "1/2 pods running"}
    ],
    "replicaStatuses": {
        "worker": {
            "active": 2,
            "ready": 1,
            "pending": 0,
            "succeeded": 0,
            "failed": 0,
            "restarts": 0,
        }
    },
}


def with_counts(ready: int) -> JobStatus:
    status: Any = copy.deepcopy(RUNNING_WITH_COUNTS)
    status["conditions"][0]["message"] = f"{ready}/2 pods running"
    status["replicaStatuses"]["worker"]["ready"] = ready
    return cast(JobStatus, status)


def test_a_count_only_status_is_held_then_written_once() -> None:
    clock = Clock()
    r = rig(status_hold=2.0, clock=clock)
    job = make_job(status=dict(with_counts(1)))
    first = apply(r, Plan(status=with_counts(2)), job)
    assert first == Outcome(requeue_after=2.0) and r.kube.log() == []
    clock.now += 0.5
    assert apply(r, Plan(status=with_counts(2), requeue_after=30.0), job) == Outcome(
        requeue_after=1.5
    )
    assert r.kube.log() == []
    clock.now += 1.5
    assert apply(r, Plan(status=with_counts(2)), job) == Outcome()
    assert r.kube.log() == ["PATCH trainingjobs/status mnist"]


def test_a_status_that_decides_anything_is_never_held() -> None:
    clock = Clock()
    r = rig(status_hold=2.0, clock=clock)
    job = make_job(status=dict(with_counts(1)))
    apply(r, Plan(status=with_counts(2)), job)  # held
    # A restart count is a decision: it goes out now, and the held counts with it.
    decided = dict(with_counts(2), restartCount=1)
    assert apply(r, Plan(status=cast(JobStatus, decided)), job) == Outcome()
    assert r.kube.log() == ["PATCH trainingjobs/status mnist"]
    # So does a count-only status that comes with a create.
    plan = Plan(status=with_counts(2), creates=[child("Pod", "mnist-worker-1")])
    apply(r, plan, job)
    assert r.kube.log()[1:] == ["PATCH trainingjobs/status mnist", "POST pods mnist-worker-1"]


def test_a_failed_job_deletion_fails_the_apply() -> None:
    r = rig()
    r.kube.fail("DELETE", "trainingjobs", 500)
    with pytest.raises(ApplyFailed):
        apply(r, Plan(delete_job=True))
    assert r.kube.log() == ["DELETE trainingjobs mnist"]


def test_a_failing_event_post_never_fails_the_plan() -> None:
    r = rig()
    r.kube.fail("POST", "events", 500)
    outcome = apply(r, Plan(status=RUNNING, events=[Event("Normal", "Running", "ok")]))
    assert outcome == Outcome()
    assert r.kube.log()[-1].startswith("POST events")


def test_events_about_a_child_name_that_child() -> None:
    r = rig()
    event = Event("Warning", "PodFailed", "exit 1", "Pod", "mnist-worker-0", "uid-w0")
    apply(r, Plan(events=[event]))
    (posted,) = r.kube.events()
    assert posted["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": NS,
        "name": "mnist-worker-0",
        "uid": "uid-w0",
    }
