"""The status the planner writes fits the CRD's status schema: nothing is refused or pruned.

The CRD's status is typed (only ``tracking`` is free-form), so a planner change that adds a
field or writes a wrong type would be pruned or refused by the API server; this holds the two
together through the real planner, for every example, through creation, running pods and a
failure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from api_cases import example_jobs
from elastrain.api import constants as c
from elastrain.api.schema import crd
from elastrain.planner.model import Observed
from elastrain.planner.plan import plan
from elastrain_sandbox.validation import CompiledSchema

Obj = dict[str, Any]
SCHEMA = CompiledSchema.from_crd(crd(), c.VERSION)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _pod(obj: Obj, phase: str, exit_code: int | None = None) -> Obj:
    pod = copy.deepcopy(obj)
    pod["metadata"]["uid"] = f"uid-{pod['metadata']['name']}"
    state: Obj = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "reason": "Error"}}
    pod["status"] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if phase == "Running" else "False"}],
        "containerStatuses": [
            {"name": c["name"], "restartCount": 0, "state": state, "ready": phase == "Running"}
            for c in pod["spec"]["containers"]
        ],
    }
    return pod


def _check(job: Obj, status: Mapping[str, object]) -> None:
    obj = {**job, "status": status}
    pruned = [p for p in SCHEMA.pruned_fields(obj) if p.startswith("status")]
    assert pruned == []
    decoded = {**SCHEMA.prepare(copy.deepcopy(obj)), "metadata": job["metadata"]}
    assert SCHEMA.validate(decoded) == []


@pytest.mark.parametrize(("name", "job"), example_jobs())
def test_planner_status_fits_the_schema(name: str, job: Obj) -> None:
    job = copy.deepcopy(job)
    job["metadata"].update(uid="job-uid", namespace="default", generation=1)
    first = plan(job, Observed(now=NOW))
    assert first.status is not None
    _check(job, first.status)
    job["status"] = first.status
    pods = [o for o in first.creates if o["kind"] == "Pod"]
    assert pods
    running = [_pod(p, "Running") for p in pods]
    second = plan(job, Observed(now=NOW, pods=running))
    _check(job, second.status or job["status"])
    job["status"] = second.status or job["status"]
    failed = [_pod(pods[0], "Failed", exit_code=137), *running[1:]]
    third = plan(job, Observed(now=NOW, pods=failed))
    assert third.status is not None
    _check(job, third.status)
    assert third.status["tracking"]
