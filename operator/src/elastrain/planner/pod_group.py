"""The job's PodGroup (gang scheduling): created while the job runs, replaced when its gang size
changes, deleted when gang scheduling is no longer requested, on suspension and at the end.

Only the PodGroup this job controls is ever touched: a namesake someone else owns (a user's
own PodGroup) is never replaced or deleted. See docs/lifecycle.md, "Gang scheduling".
"""

from __future__ import annotations

from typing import Any

from elastrain.planner import children
from elastrain.planner.model import Delete
from elastrain.planner.observe import controller_uid
from elastrain.planner.state import State, object_name


def ensure(state: State) -> None:
    """Create the PodGroup; replace it when its gang size no longer matches the spec."""
    job = state.job
    if not any(object_name(g) == job.name for g in state.observed.pod_groups):
        state.creates.append(children.build_pod_group_spec(job))
        return
    group = own(state)
    spec = group.get("spec") if group is not None else None
    if group is not None and (
        not isinstance(spec, dict) or spec.get("minMember") != children.min_member(job)
    ):
        delete(state)


def own(state: State) -> dict[str, Any] | None:
    """The PodGroup named after the job, if this job controls it.

    A namesake someone else owns (a user's own PodGroup) is never replaced or deleted.
    """
    for group in state.observed.pod_groups:
        if object_name(group) == state.job.name and controller_uid(group) == state.job.uid:
            return group
    return None


def delete(state: State) -> None:
    """Delete the job's own PodGroup, unless it is already on its way out."""
    group = own(state)
    if group is None:
        return
    meta = group["metadata"]
    if meta.get("deletionTimestamp"):
        return
    uid = meta.get("uid")
    state.deletes.append(
        Delete("PodGroup", state.job.name, uid if isinstance(uid, str) else None, "Unneeded")
    )
