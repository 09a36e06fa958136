"""One invariant checker over a cluster's state, for every reliability scenario.

It reads TrainingJobs, Pods and Services through the API alone (``Snapshot.take``), so it runs
on any cluster, and judges them with pure functions (``Invariants.check``), so that its own
tests feed it hand-made states that break each rule. Two kinds of rules:

* **always** (checked at every snapshot, during churn and operator kills):
  - no two live pods for one (job, role, index);
  - a job's ``restartCount`` never decreases;
  - a job that reached Succeeded or Failed stays there;
* **settled** (checked once the scenario has converged, when nothing may be in flight):
  - no orphans: every pod and Service labelled with a job is owned by that job, alive;
  - no finished or suspended job keeps a running or pending pod;
  - every Running job has a running pod;
  - nothing is stuck deleting (a deletionTimestamp outliving its finalizers' reasons).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cluster_api import Api, resource_path
from elastrain.api import constants as c

Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Snapshot:
    """The objects of some namespaces at one moment (three LISTs, not atomic together)."""

    jobs: list[Obj]
    pods: list[Obj]
    services: list[Obj]

    @classmethod
    def take(cls, api: Api, namespaces: list[str]) -> Snapshot:
        jobs: list[Obj] = []
        pods: list[Obj] = []
        services: list[Obj] = []
        for ns in namespaces:
            jobs += api.items(resource_path(c.API_VERSION, c.PLURAL, ns))
            pods += api.items(resource_path("v1", "pods", ns), labelSelector=c.LABEL_JOB_NAME)
            services += api.items(
                resource_path("v1", "services", ns), labelSelector=c.LABEL_JOB_NAME
            )
        return cls(jobs, pods, services)


def _key(obj: Obj) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _deleting(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def _phase(obj: Obj) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


def _live(pod: Obj) -> bool:
    """Running or about to: neither finished nor on its way out."""
    return _phase(pod) in ("", "Pending", "Running") and not _deleting(pod)


def _controllers(child: Obj) -> set[str]:
    """The uids of the TrainingJobs that control ``child`` (one, for a sound child)."""
    return {
        str(ref.get("uid"))
        for ref in child["metadata"].get("ownerReferences") or []
        if ref.get("kind") == c.KIND and ref.get("controller")
    }


@dataclass
class Invariants:
    """The rules, with the history the "always" ones need; counts what it checked."""

    restarts: dict[str, int] = field(default_factory=dict)  # job uid -> highest restartCount
    terminal: dict[str, str] = field(default_factory=dict)  # job uid -> its terminal phase
    snapshots: int = 0
    checks: int = 0

    def check(self, snap: Snapshot, *, settled: bool = False) -> list[str]:
        """Every violation in ``snap`` (empty: all held); ``settled`` adds the settled rules."""
        self.snapshots += 1
        found = self._always(snap)
        if settled:
            found += self.settled(snap)
        return found

    def settled(self, snap: Snapshot) -> list[str]:
        """The settled rules alone, for a caller that polls them until they hold or time out:
        a pod's graceful deletion is still in flight when its job has already converged."""
        return self._settled(snap)

    # ------------------------------------------------------------------ always
    def _always(self, snap: Snapshot) -> list[str]:
        found: list[str] = []
        slots = Counter(
            (
                p["metadata"].get("namespace"),
                p["metadata"]["labels"].get(c.LABEL_JOB_NAME),
                p["metadata"]["labels"].get(c.LABEL_REPLICA_TYPE),
                p["metadata"]["labels"].get(c.LABEL_REPLICA_INDEX),
            )
            for p in snap.pods
            if _live(p)
        )
        self.checks += 1
        found += [f"{n} live pods for {slot}" for slot, n in slots.items() if n > 1]
        for job in snap.jobs:
            uid, name = job["metadata"]["uid"], "/".join(_key(job))
            status = job.get("status") or {}
            count = int(status.get("restartCount") or 0)
            self.checks += 2
            if count < self.restarts.get(uid, 0):
                found.append(f"{name}: restartCount fell {self.restarts[uid]} -> {count}")
            self.restarts[uid] = max(count, self.restarts.get(uid, 0))
            phase = _phase(job)
            if uid in self.terminal and phase != self.terminal[uid]:
                found.append(f"{name}: left terminal phase {self.terminal[uid]} for {phase!r}")
            elif phase in TERMINAL:
                self.terminal[uid] = phase
        return found

    # ------------------------------------------------------------------ settled
    def _settled(self, snap: Snapshot) -> list[str]:
        found: list[str] = []
        jobs = {_key(j): j for j in snap.jobs}
        children = [("pod", p) for p in snap.pods] + [("service", s) for s in snap.services]
        for kind, child in children:
            self.checks += 1
            ns = child["metadata"].get("namespace", "")
            owner_name = child["metadata"]["labels"].get(c.LABEL_JOB_NAME, "")
            job = jobs.get((ns, owner_name))
            owners = _controllers(child)
            what = f"{kind} {ns}/{child['metadata']['name']}"
            if job is None or job["metadata"]["uid"] not in owners:
                found.append(f"{what}: orphaned (job {owner_name!r} alive: {job is not None})")
        live: Counter[str] = Counter()  # by the owning job's uid
        running: Counter[str] = Counter()
        for pod in snap.pods:
            for uid in _controllers(pod):
                live[uid] += _live(pod)
                running[uid] += _phase(pod) == "Running" and not _deleting(pod)
        for key, job in jobs.items():
            phase, name, uid = _phase(job), "/".join(key), job["metadata"]["uid"]
            self.checks += 2
            if phase in (*TERMINAL, "Suspended") and live[uid]:
                found.append(f"{name}: {phase} with {live[uid]} running or pending pods")
            if phase == "Running" and not running[uid]:
                found.append(f"{name}: Running without a running pod")
        for obj in [*snap.jobs, *snap.pods, *snap.services]:
            self.checks += 1
            if _deleting(obj):
                finalizers = obj["metadata"].get("finalizers") or []
                found.append(f"{'/'.join(_key(obj))}: stuck deleting, finalizers {finalizers}")
        return found
