"""What the observed pods add up to: which replicas are up, whether the job runs or is done.

Read-only queries over one reconcile's observation, shared by the phase derivation and the
finish decision. "Up" is deliberately strict: a pod counts only when it runs (or has
succeeded) with the job's current wiring and nothing has been decided about it (it is not
failed-and-counted, disrupted, or being deleted by us), so a job is never reported Running on
the strength of pods that are on their way out.
"""

from __future__ import annotations

from dataclasses import dataclass

from elastrain.api import constants as c
from elastrain.api.types import SuccessPolicy, TrainingJob
from elastrain.planner import children, env
from elastrain.planner.observe import RUNNING, SUCCEEDED, PodObservation, PodView
from elastrain.planner.restarts import RELEASED, Tracking


@dataclass(frozen=True)
class Progress:
    """Queries over ``pods`` of ``job``; ``tracking`` is read live (the plan updates it)."""

    job: TrainingJob
    pods: PodObservation
    tracking: Tracking
    topology: str

    def desired(self) -> list[tuple[str, int]]:
        return [(role, index) for role in c.ROLES for index in range(env.replicas(self.job, role))]

    def desired_counts(self) -> dict[str, int]:
        return {role: spec.replicas for role, spec in sorted(self.job.spec.replica_specs.items())}

    def wanted(self, pod: PodView) -> bool:
        return pod.index < env.replicas(self.job, pod.role)

    def up(self, pod: PodView) -> bool:
        """Running (or done) with the current wiring, and not on its way out."""
        return (
            not pod.terminating
            and pod.phase in (RUNNING, SUCCEEDED)
            and self.tracking.outcome(pod) is None
            and pod.wired_for(self.topology)
            and self.wanted(pod)
        )

    def up_count(self, role: str) -> int:
        return sum(1 for p in self.pods.pods if p.role == role and self.up(p))

    def complete(self) -> bool:
        """The Running criterion: every replica up; elastic workers: at least minReplicas."""
        elastic = self.job.spec.elastic_policy
        for role in self.job.spec.replica_specs:
            need = env.replicas(self.job, role)
            if role == c.ROLE_WORKER and elastic is not None:
                need = min(need, elastic.min_replicas)
            if self.up_count(role) < need:
                return False
        return True

    def fully_settled(self) -> bool:
        """Every desired replica up and no pod beyond the desired ones left."""
        return all(
            self.up_count(role) == env.replicas(self.job, role)
            for role in self.job.spec.replica_specs
        ) and all(self.wanted(p) for p in self.pods.pods)

    def stuck(self) -> str:
        """``; <pod>: <why it is not running>`` for the first few stuck pods, else ``""``."""
        stuck = [
            f"{p.name}: {p.waiting}"
            for p in self.pods.pods
            if p.waiting and (p.live or p.terminating)
        ]
        if not stuck:
            return ""
        more = f" (+{len(stuck) - 2} more)" if len(stuck) > 2 else ""
        return "; " + "; ".join(stuck[:2]) + more

    def success(self) -> str | None:
        """Why the job succeeded, or None if it has not."""

        def done(role: str, index: int) -> bool:
            pod = self.pods.by_name(children.pod_name(self.job, role, index))
            return (
                pod is not None
                and pod.phase == SUCCEEDED
                and self.tracking.outcome(pod) != RELEASED
            )

        has_chief = env.replicas(self.job, c.ROLE_CHIEF) > 0
        if self.job.spec.success_policy is SuccessPolicy.CHIEF:
            role = c.ROLE_CHIEF if has_chief else c.ROLE_WORKER
            return f"{role} 0 succeeded" if done(role, 0) else None
        if has_chief and not done(c.ROLE_CHIEF, 0):
            return None
        workers = env.replicas(self.job, c.ROLE_WORKER)
        finished = [i for i in range(workers) if done(c.ROLE_WORKER, i)]
        if self.job.spec.elastic_policy is not None:
            # torchrun's agents exit 0 together when training ends; workers that never joined
            # (still pending) are not waited for.
            running = any(
                p.role == c.ROLE_WORKER and p.running and self.wanted(p) for p in self.pods.pods
            )
            if finished and not running:
                noun = "elastic worker" if len(finished) == 1 else "elastic workers"
                return f"{len(finished)} {noun} succeeded"
            return None
        if workers == 1 and finished:
            return "the worker succeeded"
        if workers > 0 and len(finished) == workers:
            return f"all {workers} workers succeeded"
        if workers == 0 and has_chief:
            return "chief succeeded"
        return None
