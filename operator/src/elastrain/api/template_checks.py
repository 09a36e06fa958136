"""Checks on a role's pod template: the parts the operator relies on, and the parts it owns.

Everything else in the template is the pod's business and passes through untouched; these
checks exist so that a template the operator would silently overwrite (its labels, the pod's
restartPolicy, hostname or subdomain) or could not run (no containers, no image) is refused
with the field named, and so that ``gpus`` never disagrees with the template's own GPU limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from elastrain.api import constants as c
from elastrain.api.reader import Reader, describe

# Pod fields and labels the operator sets itself; a user value would be overwritten.
OPERATOR_POD_FIELDS = ("restartPolicy", "hostname", "subdomain")
OPERATOR_LABELS = (c.LABEL_JOB_NAME, c.LABEL_REPLICA_TYPE, c.LABEL_REPLICA_INDEX)


def check_template(r: Reader, template: Mapping[str, Any], gpus: int | None) -> bool:
    """The parts of a PodTemplateSpec the operator relies on or owns; the rest is the pod's."""
    before = len(r.errors)
    path = r.at("template")
    t = Reader(r.errors, path, template, ("metadata", "spec"))
    meta = t.obj_("metadata")
    if meta is not None:
        for field in ("labels", "annotations"):
            _check_string_map(t, f"metadata.{field}", meta.get(field), field == "labels")
    pod = t.obj_("spec", required=True)
    if pod is None:
        return False
    for key in OPERATOR_POD_FIELDS:
        if key in pod:
            hint = " from the replica's restartPolicy" if key == "restartPolicy" else ""
            t.error(f"spec.{key}", f"is set by the operator{hint}; remove it")
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        t.error("spec.containers", "must list at least one container")
        return False
    seen: set[str] = set()
    for i, container in enumerate(containers):
        _check_container(t, f"spec.containers[{i}]", container, gpus, seen)
    return len(r.errors) == before


def _check_container(t: Reader, at: str, container: Any, gpus: int | None, seen: set[str]) -> None:
    if not isinstance(container, Mapping):
        t.error(at, "must be an object")
        return
    name = container.get("name")
    if not isinstance(name, str) or not name:
        t.error(f"{at}.name", "required field is missing")
    elif len(name) > 63 or not re.match(c.CONTAINER_NAME_PATTERN, name):
        t.error(f"{at}.name", f"{name!r} must be a DNS-1123 label of at most 63 characters")
    elif name in seen:
        t.error(f"{at}.name", f"duplicate container name {name!r}")
    else:
        seen.add(name)
    image = container.get("image")
    if not isinstance(image, str) or not image:
        t.error(f"{at}.image", "required field is missing")
    resources = container.get("resources")
    limits = resources.get("limits") if isinstance(resources, Mapping) else None
    declared = limits.get(c.GPU_RESOURCE) if isinstance(limits, Mapping) else None
    if gpus is not None and declared is not None and str(declared) != str(gpus):
        t.error(
            f"{at}.resources.limits",
            f"{c.GPU_RESOURCE}={declared} conflicts with gpus={gpus}; set only one of them",
        )


def _check_string_map(t: Reader, at: str, value: Any, labels: bool) -> None:
    """Labels and annotations: maps of strings; our own label keys are reserved."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        t.error(at, "must be a map of strings")
        return
    for key, item in value.items():
        if labels and key in OPERATOR_LABELS:
            t.error(f"{at}.{key}", "is set by the operator; remove it")
        elif not isinstance(item, str):
            t.error(f"{at}.{key}", f"must be a string, got {describe(item)}")
