"""Whatever the cluster hands the planner, it answers with a Plan and never raises.

Observed objects come from the API server and from other controllers; a half-written or odd
object must never crash a reconcile (kopf would retry the exception forever).
"""

from __future__ import annotations

from typing import Any

from elastrain.planner import plan
from elastrain.planner.model import Observed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planner_world import T0, make_job

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


@st.composite
def pods(draw: st.DrawFn) -> Any:
    """Mostly pods that look like ours, with junk where Kubernetes puts status."""
    if draw(st.booleans()):
        return draw(JSON)
    index = draw(st.sampled_from(["0", "1", "7", "-1", "x"]))
    role = draw(st.sampled_from(["worker", "ps", "chief", "bogus"]))
    return {
        "metadata": {
            "name": f"mnist-{role}-{index}",
            "uid": draw(st.text(max_size=4)),
            "labels": {
                "elastrain.dev/job-name": "mnist",
                "elastrain.dev/replica-type": role,
                "elastrain.dev/replica-index": index,
            },
            "ownerReferences": [
                {
                    "apiVersion": "elastrain.dev/v1alpha1",
                    "kind": "TrainingJob",
                    "name": "mnist",
                    "controller": True,
                    "uid": "job-uid-1",
                }
            ],
            "annotations": draw(JSON),
            "deletionTimestamp": draw(st.none() | st.text(max_size=4)),
        },
        "spec": draw(JSON),
        "status": {
            "phase": draw(st.sampled_from(["Pending", "Running", "Failed", "Succeeded", 3, None])),
            "conditions": draw(JSON),
            "containerStatuses": draw(JSON),
            "reason": draw(JSON),
        },
    }


STATUS_KEYS = (
    "phase",
    "conditions",
    "restartCount",
    "startTime",
    "completionTime",
    "replicaStatuses",
    "tracking",
)
CONDITIONS = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["Created", "Running", "Failed", "Succeeded", "Odd", 5]),
            "status": st.sampled_from(["True", "False", None]),
        },
        optional={"reason": JSON, "lastTransitionTime": JSON},
    ),
    max_size=4,
)
TRACKING = st.fixed_dictionaries(
    {},
    optional={
        "pods": st.dictionaries(st.text(max_size=3), JSON, max_size=3),
        "backoff": st.dictionaries(
            st.sampled_from(["job", "worker-0", "worker-x", "-"]),
            st.fixed_dictionaries(
                {"notBefore": st.sampled_from(["2026-01-01T12:00:10Z", "junk", 4])},
                optional={"attempts": JSON, "lastFailure": JSON, "recovering": JSON},
            ),
            max_size=3,
        ),
        "settled": JSON,
    },
)
STATUSES = JSON | st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(STATUS_KEYS, JSON),
        "conditions": CONDITIONS,
        "tracking": TRACKING,
        "startTime": st.sampled_from(["2026-01-01T11:00:00Z", "x", 3]),
        "completionTime": st.sampled_from(["2026-01-01T11:00:00Z", "x", 3]),
    },
)


def test_plan_never_raises_on_odd_observations() -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        observed_pods=st.lists(pods(), max_size=5),
        services=st.lists(JSON, max_size=2),
        groups=st.lists(JSON, max_size=2),
        status=STATUSES,
        queue=st.booleans(),
    )
    def check(
        observed_pods: list[Any], services: list[Any], groups: list[Any], status: Any, queue: bool
    ) -> None:
        run_policy = {"schedulingPolicy": {"queue": "q"}} if queue else {}
        job = make_job(workers=2, roles=None, runPolicy=run_policy)
        job["status"] = status
        observed = Observed(
            now=T0,
            pods=observed_pods,
            services=services,
            pod_groups=groups,
            pod_group_crd_available=True,
        )
        result = plan(job, observed)
        assert result.status is None or isinstance(result.status, dict)

    check()
