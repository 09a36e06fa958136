"""A tiny in-memory cluster that applies Plans the way the handlers do, for planner tests.

Status first (the whole next status replaces the old one, as the handlers' merge patch does),
then deletes (uid-guarded; the pod becomes terminating, or vanishes with ``finish=True``), then
creates (a name already taken is the 409 that counts as success). Pods then change only through
the helpers, which play the kubelet's part. Pods named in ``withheld`` exist but are left out of
the observation, as when the handlers' indexes have not caught up with a create yet.
"""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from elastrain.planner.model import Observed, Plan, Rejection, TrainerSample
from elastrain.planner.plan import plan

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def container(name: str = "trainer") -> dict[str, Any]:
    return {"name": name, "image": "example.com/train:1"}


def replica(replicas: int = 1, restart_policy: str = "OnFailure", **extra: Any) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "restartPolicy": restart_policy,
        "template": {"spec": {"containers": [container()]}},
        **extra,
    }


def make_job(
    name: str = "mnist",
    *,
    workers: int = 2,
    policy: str = "OnFailure",
    roles: dict[str, dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A raw TrainingJob; ``roles`` replaces the default single worker role."""
    replica_specs = roles if roles is not None else {"worker": replica(workers, policy)}
    return {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": "team-a", "uid": "job-uid-1", "generation": 1},
        "spec": {"replicaSpecs": replica_specs, **spec},
    }


class World:
    """The job, its children and the clock."""

    def __init__(self, job: dict[str, Any], *, crd: bool = False) -> None:
        self.job = copy.deepcopy(job)
        self.now = T0
        self.crd = crd
        self.pods: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.pod_groups: dict[str, dict[str, Any]] = {}
        self._uids = itertools.count(1)
        self.deleted_job = False
        # Pods that exist but the next observations do not show (an index lagging behind).
        self.withheld: set[str] = set()
        # Pod names created by the last applied plan.
        self.created_last: list[str] = []
        # The trainer's newest metrics reading, and the operator's --stall-after.
        self.sample: TrainerSample | None = None
        self.stall_after: float | None = None
        # Child names whose creates the API server refuses as invalid, with its message; the
        # last refusal goes into the next observation, as the reconciler reports it.
        self.refuse: dict[str, str] = {}
        # Pods the scheduler leaves unplaced (no spec.nodeName) when they are created.
        self.unplaced: set[str] = set()
        self.rejected: Rejection | None = None

    # -- planning ---------------------------------------------------------------------------

    def observed(self) -> Observed:
        return Observed(
            now=self.now,
            pods=copy.deepcopy([p for n, p in self.pods.items() if n not in self.withheld]),
            services=copy.deepcopy(list(self.services.values())),
            pod_groups=copy.deepcopy(list(self.pod_groups.values())),
            pod_group_crd_available=self.crd,
            sample=self.sample,
            stall_after_seconds=self.stall_after,
            rejected=self.rejected,
        )

    def plan(self) -> Plan:
        observed = self.observed()
        self.rejected = None  # reported once
        return plan(copy.deepcopy(self.job), observed)

    def apply(self, p: Plan, *, finish: bool = True) -> Plan:
        if p.status is not None:
            self.job["status"] = copy.deepcopy(p.status)
        for d in p.deletes:
            store = self._store(d.kind)
            obj = store.get(d.name)
            if obj is None or (d.uid is not None and obj["metadata"]["uid"] != d.uid):
                continue
            if finish:
                del store[d.name]
            else:
                obj["metadata"]["deletionTimestamp"] = self.ts()
        self.created_last = []
        for obj in p.creates:
            store = self._store(obj["kind"])
            name = obj["metadata"]["name"]
            if name in self.refuse:
                self.rejected = Rejection(obj["kind"], name, self.refuse[name])
                continue
            if name in store:
                continue
            obj = copy.deepcopy(obj)
            obj["metadata"]["uid"] = f"uid-{next(self._uids)}"
            obj["metadata"]["creationTimestamp"] = self.ts()
            if obj["kind"] == "Pod":
                obj["status"] = {"phase": "Pending"}
                if name not in self.unplaced:  # the scheduler binds it at once
                    obj["spec"]["nodeName"] = "node-a"
                self.created_last.append(name)
            store[name] = obj
        if p.delete_job:
            self.deleted_job = True
        return p

    def step(self, *, finish: bool = True) -> Plan:
        return self.apply(self.plan(), finish=finish)

    def settle(self, rounds: int = 8) -> Plan:
        """Plan and apply until nothing is left to do; fail if that never happens."""
        for _ in range(rounds):
            p = self.step()
            if not p.creates and not p.deletes and p.status is None:
                return p
        raise AssertionError(f"no fixpoint after {rounds} rounds: {self.plan()}")

    def _store(self, kind: str) -> dict[str, dict[str, Any]]:
        return {"Pod": self.pods, "Service": self.services, "PodGroup": self.pod_groups}[kind]

    # -- the clock and the kubelet ----------------------------------------------------------

    def ts(self) -> str:
        return self.now.strftime("%Y-%m-%dT%H:%M:%SZ")

    def ts_after(self, seconds: float) -> str:
        return (self.now + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.job.get("status") or {})

    @property
    def phase(self) -> str | None:
        return self.status.get("phase")

    def condition(self, kind: str) -> dict[str, Any] | None:
        for cond in self.status.get("conditions", []):
            if cond["type"] == kind:
                return dict(cond)
        return None

    def run(self, *names: str) -> None:
        """Pods (all when none named) become Running and Ready."""
        for name in names or tuple(self.pods):
            pod = self.pods[name]
            if pod["status"].get("phase", "Pending") == "Pending":
                pod["status"] = {
                    **pod["status"],
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}],
                }

    def succeed(self, *names: str) -> None:
        for name in names:
            self.pods[name]["status"] = {
                "phase": "Succeeded",
                "containerStatuses": [
                    {
                        "name": "trainer",
                        "restartCount": self._restarts(name),
                        "state": {"terminated": {"exitCode": 0}},
                    }
                ],
            }

    def fail(
        self,
        name: str,
        exit_code: int | None = 1,
        *,
        reason: str | None = None,
        disruption: str | None = None,
    ) -> None:
        state = {"terminated": {"exitCode": exit_code}} if exit_code is not None else {}
        status: dict[str, Any] = {
            "phase": "Failed",
            "containerStatuses": [
                {"name": "trainer", "restartCount": self._restarts(name), "state": state}
            ],
        }
        if reason:
            status["reason"] = reason
        if disruption:
            status["conditions"] = [
                {"type": "DisruptionTarget", "status": "True", "reason": disruption}
            ]
        self.pods[name]["status"] = status

    def restart_in_place(self, name: str, times: int = 1) -> None:
        """The kubelet restarted the pod's container ``times`` more times."""
        pod = self.pods[name]
        statuses = pod["status"].setdefault(
            "containerStatuses", [{"name": "trainer", "restartCount": 0}]
        )
        statuses[0]["restartCount"] = statuses[0].get("restartCount", 0) + times

    def remove(self, name: str) -> None:
        """The pod vanished (deleted by someone else, garbage collected)."""
        del self.pods[name]

    def _restarts(self, name: str) -> int:
        statuses = self.pods[name]["status"].get("containerStatuses") or [{}]
        return int(statuses[0].get("restartCount", 0))

    def report(self, step: int, total: int | None = 100, loss: float | None = 0.5) -> None:
        """The trainer's rank 0 reports ``step`` now (what the operator's reader hands over)."""
        self.sample = TrainerSample(
            at=self.now, step=step, total_steps=total, loss=loss, samples_per_second=64.0,
            world_size=2,
        )  # fmt: skip

    def pod_names(self) -> list[str]:
        return sorted(self.pods)

    def env(self, name: str, container_index: int = 0) -> dict[str, Any]:
        entries = self.pods[name]["spec"]["containers"][container_index]["env"]
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in entries}
