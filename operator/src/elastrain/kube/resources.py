"""The handful of API operations the operator performs, with the semantics the planner expects.

* create: 409 AlreadyExists is success (deterministic names make creation idempotent).
* delete: guarded by a uid precondition so a recreated namesake is never hit; 404 (already gone)
  and 409 (the precondition failed: the object we meant is gone, a namesake stands) are success.
* status: a JSON merge patch of the status subresource carrying the observed resourceVersion,
  so a status computed from a stale job fails with :class:`~elastrain.kube.errors.Conflict`.

Request paths come from the kind table (:mod:`elastrain.api.kinds`); discovery is in
:mod:`elastrain.kube.discovery`. Every verb used here is listed in docs/operator.md for the
chart's RBAC.
"""

from __future__ import annotations

from typing import Any

from elastrain.api.kinds import TRAINING_JOB, by_kind
from elastrain.kube import errors
from elastrain.kube.client import MERGE_PATCH, Kube


async def create(kube: Kube, obj: dict[str, Any]) -> bool:
    """Create ``obj``; True when created now, False when it already existed (success too)."""
    path = by_kind(obj["kind"]).collection_path(obj["metadata"]["namespace"])
    try:
        await kube.request("POST", path, body=obj)
    except errors.AlreadyExists:
        return False
    return True


async def delete(kube: Kube, kind: str, namespace: str, name: str, uid: str | None) -> bool:
    """Delete one object (background propagation); True when this call deleted it."""
    options: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "propagationPolicy": "Background",
    }
    if uid:
        options["preconditions"] = {"uid": uid}
    try:
        await kube.request("DELETE", by_kind(kind).object_path(namespace, name), body=options)
    except (errors.NotFound, errors.Conflict):
        return False
    return True


async def list_uids(
    kube: Kube, kind: str, namespace: str, label_selector: str | None = None, page: int = 500
) -> set[str]:
    """The uids of every ``kind`` object in ``namespace`` (matching ``label_selector``), read in
    pages of ``page`` so that a large namespace never becomes one huge response."""
    uids: set[str] = set()
    token = ""
    while True:
        query = [("limit", str(page))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if token:
            query.append(("continue", token))
        result = await kube.request("GET", by_kind(kind).collection_path(namespace), query=query)
        for item in result.get("items") or []:
            uids.add(str((item.get("metadata") or {}).get("uid") or ""))
        token = (result.get("metadata") or {}).get("continue") or ""
        if not token:
            return uids


async def get_uid(kube: Kube, kind: str, namespace: str, name: str) -> str | None:
    """The uid of the ``kind`` object ``name`` now, or None when there is none."""
    try:
        obj = await kube.request("GET", by_kind(kind).object_path(namespace, name))
    except errors.NotFound:
        return None
    return str((obj.get("metadata") or {}).get("uid") or "") or None


async def patch_job_status(
    kube: Kube, namespace: str, name: str, resource_version: str, patch: dict[str, Any]
) -> dict[str, Any]:
    """Merge-patch ``status`` with an optimistic-concurrency check; returns the updated job."""
    body = {"metadata": {"resourceVersion": resource_version}, "status": patch}
    path = TRAINING_JOB.object_path(namespace, name) + "/status"
    result: dict[str, Any] = await kube.request("PATCH", path, body=body, content_type=MERGE_PATCH)
    return result


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns ``old`` into ``new``.

    The planner returns the *whole* next status; sending it as is would leave keys it dropped in
    place (merge patches only add and replace), so removed keys are sent as null. Unchanged
    keys are left out, which keeps status writes small on jobs with many replicas.
    """
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch(old[key], value) if isinstance(value, dict) else value
    return patch
