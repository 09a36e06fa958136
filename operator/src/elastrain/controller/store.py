"""Read access to the kopf indexes of jobs and their children, keyed by ``(namespace, job name)``.

kopf keeps the indexes current from its watches and blocks every event handler until all of
them are fully populated after a (re)start, so the first reconcile of a job already sees every
child that exists: no duplicate creates and no "missing pod" misread as a failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from elastrain.api.kinds import CHILD_KINDS, TRAINING_JOB
from elastrain.api.ownership import owning_job

JobKey = tuple[str, str]


# What the operator reads of a pod's containers (``spec.containers`` and ``initContainers``):
# ports (the trainer's metrics port), resources (GPUs requested), restartPolicy (native
# sidecars) and the name that ties a container to its status.
_CONTAINER_FIELDS = ("name", "ports", "resources", "restartPolicy")
# ... and of the rest of its spec: ``overhead`` adds to its requests (``api.quantity``).
_POD_SPEC_FIELDS = ("nodeName", "overhead")


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy of an object as the indexes keep it: without ``managedFields`` (half an
    object's size, unused) and, for a pod, with only the parts of its spec the operator reads.

    A pod's spec is most of its size (every container's env, command, mounts and probes, the
    service-account volume, tolerations) and the operator never reads it back: the indexes hold
    every pod of every job, so at 1,000 jobs this is tens of MiB.
    """
    obj = dict(body)
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    obj["metadata"] = meta
    spec = obj.get("spec")
    if isinstance(spec, Mapping) and "containers" in spec:
        kept = {k: spec[k] for k in _POD_SPEC_FIELDS if k in spec}
        for key in ("containers", "initContainers"):
            listed = spec.get(key)
            if isinstance(listed, list):
                kept[key] = [
                    {f: ctr[f] for f in _CONTAINER_FIELDS if f in ctr}
                    if isinstance(ctr, Mapping)
                    else ctr
                    for ctr in listed
                ]
        obj["spec"] = kept
    return obj


def owner_job_key(body: Mapping[str, Any]) -> JobKey | None:
    """The key of the job a child belongs to (:func:`elastrain.api.ownership.owning_job`)."""
    owner = owning_job(body)
    if owner is None:
        return None
    return str((body.get("metadata") or {}).get("namespace") or ""), owner.name


def uid_of(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("uid") or "")


class Store:
    """The four indexes the reconcile reads instead of listing the API.

    Objects the API has deleted but an index still holds (*ghosts*, see
    :mod:`elastrain.controller.relist`) are :meth:`bury`-ed by uid and never shown again: uids
    are never reused, so a namesake created later is shown as usual.
    """

    def __init__(
        self,
        jobs: Mapping[JobKey, Iterable[dict[str, Any]]],
        pods: Mapping[JobKey, Iterable[dict[str, Any]]],
        services: Mapping[JobKey, Iterable[dict[str, Any]]],
        pod_groups: Mapping[JobKey, Iterable[dict[str, Any]]] | None,
    ) -> None:
        # In the order of ``CHILD_KINDS`` after the jobs (``index_of`` relies on it).
        self._jobs = jobs
        self._pods = pods
        self._services = services
        self._pod_groups = pod_groups
        self._buried: set[str] = set()

    def _values(
        self, index: Mapping[JobKey, Iterable[dict[str, Any]]] | None, key: JobKey
    ) -> list[Any]:
        if index is None:
            return []
        store = index.get(key)
        if store is None:
            return []
        return [obj for obj in store if not self._buried or uid_of(obj) not in self._buried]

    def job_keys(self) -> list[JobKey]:
        """Every job currently known."""
        if not self._buried:
            return list(self._jobs.keys())
        return [key for key in list(self._jobs.keys()) if self.job(key) is not None]

    def job(self, key: JobKey) -> dict[str, Any] | None:
        """The latest job body seen by the watch, or None once it is gone."""
        found = self._values(self._jobs, key)
        return found[0] if found else None

    def pods(self, key: JobKey) -> list[dict[str, Any]]:
        return self._values(self._pods, key)

    def services(self, key: JobKey) -> list[dict[str, Any]]:
        return self._values(self._services, key)

    def pod_groups(self, key: JobKey) -> list[dict[str, Any]]:
        return self._values(self._pod_groups, key)

    def index_of(self, kind: str) -> Mapping[JobKey, Iterable[dict[str, Any]]] | None:
        """The raw index of ``kind`` (``TrainingJob``, ``Pod``, ...), ghosts included."""
        kinds = (TRAINING_JOB.kind, *(k.kind for k in CHILD_KINDS))
        indexes = (self._jobs, self._pods, self._services, self._pod_groups)
        return dict(zip(kinds, indexes, strict=True)).get(kind)

    def objects(self, kind: str, key: JobKey) -> list[dict[str, Any]]:
        """What the Store shows of ``kind`` under ``key`` (buried ghosts hidden)."""
        return self._values(self.index_of(kind), key)

    def bury(self, uid: str) -> None:
        """Hide the object ``uid`` for good: the API deleted it, but its index missed the event."""
        if uid:
            self._buried.add(uid)

    def buried(self) -> int:
        return len(self._buried)

    def prune(self) -> int:
        """Forget the buried uids no index holds any more; returns how many were forgotten.

        kopf keys its indexes by name, so a ghost leaves them once a namesake replaces it or
        its key empties; after that its uid is dead weight, and a long-lived operator under
        watch faults would hold such uids without bound.
        """
        if not self._buried:
            return 0
        held: set[str] = set()
        for index in (self._jobs, self._pods, self._services, self._pod_groups):
            if index is None:
                continue
            for key in list(index.keys()):
                held.update(uid_of(obj) for obj in index.get(key) or ())
        gone = self._buried - held
        self._buried -= gone
        return len(gone)
