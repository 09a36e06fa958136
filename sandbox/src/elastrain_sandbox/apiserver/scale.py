"""The ``scale`` subresource of custom resources (``autoscaling/v1`` Scale).

A CRD's ``subresources.scale`` names where the replica count lives
(``specReplicasPath``/``statusReplicasPath``/``labelSelectorPath``); reads project the object
into a Scale, writes (PUT, or a merge/JSON patch of the Scale) set ``specReplicasPath`` through
the ordinary update path, so admission, generation and resourceVersion behave as for any write.
"""

from __future__ import annotations

from typing import Any

from elastrain_sandbox.apiserver import errors, jsonpath
from elastrain_sandbox.apiserver.patch import json_patch, merge_patch
from elastrain_sandbox.apiserver.resources import ResourceType
from elastrain_sandbox.apiserver.store import PATCH_JSON, PATCH_MERGE, PATCH_STRATEGIC, Store

_STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def project(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The Scale view of ``obj``."""
    if rt.scale is None:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    md = obj["metadata"]
    status: dict[str, Any] = {"replicas": jsonpath.get(obj, rt.scale.status_replicas_path) or 0}
    if rt.scale.label_selector_path:
        selector = jsonpath.get(obj, rt.scale.label_selector_path)
        if selector:
            status["selector"] = selector
    keep = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: md[k] for k in keep if k in md},
        "spec": {"replicas": jsonpath.get(obj, rt.scale.spec_replicas_path) or 0},
        "status": status,
    }


def read(store: Store, rt: ResourceType, name: str, namespace: str | None) -> dict[str, Any]:
    return project(rt, store.get(rt, name, namespace))


def write(
    store: Store, rt: ResourceType, name: str, namespace: str | None, body: Any, dry_run: bool
) -> dict[str, Any]:
    """PUT of a Scale: validates ``spec.replicas`` and honours a resourceVersion precondition."""
    if rt.scale is None or not isinstance(body, dict):
        raise errors.bad_request("the body must be an autoscaling/v1 Scale")
    replicas = (body.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        message = f"Invalid value: {replicas}: must be greater than or equal to 0"
        raise errors.invalid(
            "Scale", "autoscaling", name, [("FieldValueInvalid", "spec.replicas", message)]
        )
    obj = store.get(rt, name, namespace)
    want_rv = (body.get("metadata") or {}).get("resourceVersion")
    if want_rv and want_rv != obj["metadata"]["resourceVersion"]:
        raise errors.conflict(rt.plural, rt.group, name, _STALE)
    jsonpath.set_path(obj, rt.scale.spec_replicas_path, replicas)
    return project(rt, store.update(rt, obj, namespace, dry_run=dry_run))


def patch(
    store: Store,
    rt: ResourceType,
    name: str,
    namespace: str | None,
    body: Any,
    patch_type: str,
    dry_run: bool,
) -> dict[str, Any]:
    """PATCH of a Scale (what ``kubectl scale`` sends), applied to the current projection."""
    current = read(store, rt, name, namespace)
    if patch_type == PATCH_JSON:
        patched = json_patch(current, body)
    elif patch_type in (PATCH_MERGE, PATCH_STRATEGIC):
        patched = merge_patch(current, body)
    else:
        raise errors.unsupported_media_type(patch_type)
    return write(store, rt, name, namespace, patched, dry_run)
