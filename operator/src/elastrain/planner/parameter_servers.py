"""Parameter servers: the one role whose loss restarts the whole job.

Parameter state lives only in the ps, so workers cannot continue against a fresh one: a ps
that fails (``restarts.account``) or vanishes restarts every pod, and workers are created
again only together with, or after, every fresh ps. ``tracking.ps`` remembers the ps pods
observed healthy, the only ones whose disappearance counts as a loss.
"""

from __future__ import annotations

from elastrain.api import constants as c
from elastrain.api import timefmt
from elastrain.planner import children, env
from elastrain.planner.model import Event
from elastrain.planner.restarts import JOB_KEY, Backoff
from elastrain.planner.state import State


def restart_if_lost(state: State) -> bool:
    """Whether a ps vanished, so the whole job restarts; schedules that restart at once.

    The restart is not counted against ``backoffLimit`` (nothing failed), and it is
    announced once: a job already recovering from it is not scheduled again.
    """
    if not _lost(state):
        return False
    previous = state.tracking.backoff.get(JOB_KEY)
    if previous is None or not previous.recovering:
        state.tracking.backoff[JOB_KEY] = Backoff(
            attempts=previous.attempts if previous else 0,
            last_failure=previous.last_failure if previous else None,
            not_before=timefmt.fmt(state.now),
        )
        state.events.append(
            Event(
                "Warning",
                "ParameterServerLost",
                "a parameter-server pod disappeared; restarting the whole job",
            )
        )
    return True


def _lost(state: State) -> bool:
    """A ps pod vanished while other pods still run against it: restart the whole job.

    Only a ps recorded in ``tracking.ps`` (observed healthy by an earlier plan) can be
    lost. A ps the planner created but has not observed yet is simply absent: the handlers'
    indexes can show the fresh workers before the fresh ps, and taking that for a loss
    restarted jobs at their start. Indices beyond the desired ps count do not count (they
    are being scaled away), nor do other pods with a stale wiring (being replaced anyway).
    """
    job, tracking, pods = state.job, state.tracking, state.pods.pods
    wanted = {children.pod_name(job, c.ROLE_PS, i) for i in range(env.replicas(job, c.ROLE_PS))}
    observed = {p.uid for p in pods if p.role == c.ROLE_PS}
    missing = any(name in wanted and uid not in observed for name, uid in tracking.ps.items())
    return missing and any(
        p.role != c.ROLE_PS
        and not p.terminating
        and tracking.outcome(p) is None
        and p.wired_for(state.topology)
        for p in pods
    )


def record_healthy(state: State) -> None:
    """Remember the ps pods observed healthy after this plan's decisions.

    A ps that failed, is being deleted or was released by this very plan is left out:
    what happens to it from now on is already accounted for, so its disappearance is not
    a loss. Recomputed from the observation each time, so re-planning writes the same.
    """
    state.tracking.ps = {
        p.name: p.uid
        for p in state.pods.pods
        if p.role == c.ROLE_PS
        and not p.terminating
        and state.tracking.outcome(p) is None
        and state.progress.wanted(p)
    }


def ready(state: State, created: set[str]) -> bool:
    """Whether every ps is healthy or created in this plan (trivially true without ps).

    Workers created while an old ps is still being deleted would be orphaned by it and
    trigger a second whole-job restart; they wait for the fresh parameter servers.
    """
    for index in range(env.replicas(state.job, c.ROLE_PS)):
        name = children.pod_name(state.job, c.ROLE_PS, index)
        pod = state.pods.by_name(name)
        healthy = pod is not None and not pod.terminating and state.tracking.outcome(pod) is None
        if name not in created and not healthy:
            return False
    return True
