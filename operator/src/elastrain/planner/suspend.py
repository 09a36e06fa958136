"""A suspended job (``spec.runPolicy.suspend``): its pods and PodGroup go, the job and its
Service stay.

Resuming needs nothing of its own: the next plan finds a job without pods and no ``startTime``
and starts it like a new one (see ``active``).
"""

from __future__ import annotations

from elastrain.api.types import ConditionType
from elastrain.planner import pod_group, status
from elastrain.planner.model import Plan
from elastrain.planner.state import State

_SUSPENDED = ConditionType.SUSPENDED.value


def suspend(state: State) -> Plan:
    """Delete every pod and the PodGroup; keep the job and its Service.

    Back-offs and the settled size are forgotten: a resumed job starts like a new one
    (startTime and the deadline clock restart when its pods are created again).
    """
    for pod in state.pods.pods:
        if not pod.terminating:
            state.delete_pod(pod, "JobSuspended", release=True)
    pod_group.delete(state)
    state.tracking.backoff = {}
    state.tracking.settled = None
    # A resumed job starts at whatever counts the spec has then: no scale to time.
    state.tracking.desired = None
    state.tracking.scale_start = None
    state.tracking.wiring = None
    state.tracking.ps = {}
    nxt = state.base_status()
    nxt.pop("startTime", None)
    state.set_phase(
        nxt,
        status.Phase(_SUSPENDED, "JobSuspended", "job is suspended: pods deleted, Service kept"),
    )
    return state.to_plan(nxt)
