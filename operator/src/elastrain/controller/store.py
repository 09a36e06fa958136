"""Read access to the kopf indexes of jobs and their children, keyed by ``(namespace, job name)``.

kopf keeps the indexes current from its watches and blocks every event handler until all of
them are fully populated after a (re)start, so the first reconcile of a job already sees every
child that exists: no duplicate creates and no "missing pod" misread as a failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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


def _values(index: Mapping[JobKey, Iterable[dict[str, Any]]] | None, key: JobKey) -> list[Any]:
    if index is None:
        return []
    store = index.get(key)
    return list(store) if store is not None else []


class Store:
    """The four indexes the reconcile reads instead of listing the API."""

    def __init__(
        self,
        jobs: Mapping[JobKey, Iterable[dict[str, Any]]],
        pods: Mapping[JobKey, Iterable[dict[str, Any]]],
        services: Mapping[JobKey, Iterable[dict[str, Any]]],
        pod_groups: Mapping[JobKey, Iterable[dict[str, Any]]] | None,
    ) -> None:
        self._jobs = jobs
        self._pods = pods
        self._services = services
        self._pod_groups = pod_groups

    def job_keys(self) -> list[JobKey]:
        """Every job currently known."""
        return list(self._jobs.keys())

    def job(self, key: JobKey) -> dict[str, Any] | None:
        """The latest job body seen by the watch, or None once it is gone."""
        found = _values(self._jobs, key)
        return found[0] if found else None

    def pods(self, key: JobKey) -> list[dict[str, Any]]:
        return _values(self._pods, key)

    def services(self, key: JobKey) -> list[dict[str, Any]]:
        return _values(self._services, key)

    def pod_groups(self, key: JobKey) -> list[dict[str, Any]]:
        return _values(self._pod_groups, key)
