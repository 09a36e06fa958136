"""Checks on a role's pod template: the parts the operator relies on, and the parts it owns.

Everything else in the template is the pod's business and passes through untouched; these
checks exist so that a template the operator would silently overwrite (its labels, the pod's
restartPolicy, hostname or subdomain) or could not run (no containers, no image) is refused
with the field named, and so that ``gpus`` never disagrees with the template's own GPU limit.
What the API server would refuse on every pod create (label and annotation keys, label values,
the annotations' total size, container ports, env var names) is checked here too, so a bad
template fails the job once with ``InvalidSpec`` instead of failing each pod create with a 422.
Patterns are matched with ``re.fullmatch``: ``$`` alone would accept a trailing newline, which
the API server's RE2 does not.
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
        _check_labels(t, "metadata.labels", meta.get("labels"))
        _check_annotations(t, "metadata.annotations", meta.get("annotations"))
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
    elif len(name) > 63 or not re.fullmatch(c.CONTAINER_NAME_PATTERN, name):
        t.error(f"{at}.name", f"{name!r} must be a DNS-1123 label of at most 63 characters")
    elif name in seen:
        t.error(f"{at}.name", f"duplicate container name {name!r}")
    else:
        seen.add(name)
    image = container.get("image")
    if not isinstance(image, str) or not image:
        t.error(f"{at}.image", "required field is missing")
    for j, port in enumerate(_list(t, f"{at}.ports", container.get("ports"))):
        _check_port(t, f"{at}.ports[{j}]", port)
    for j, var in enumerate(_list(t, f"{at}.env", container.get("env"))):
        _check_env(t, f"{at}.env[{j}]", var)
    resources = container.get("resources")
    limits = resources.get("limits") if isinstance(resources, Mapping) else None
    declared = limits.get(c.GPU_RESOURCE) if isinstance(limits, Mapping) else None
    if gpus is not None and declared is not None and str(declared) != str(gpus):
        t.error(
            f"{at}.resources.limits",
            f"{c.GPU_RESOURCE}={declared} conflicts with gpus={gpus}; set only one of them",
        )


def _list(t: Reader, at: str, value: Any) -> list[Any]:
    """An optional list field; anything else is reported and read as empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        t.error(at, f"must be a list, got {describe(value)}")
        return []
    return value


def _check_port(t: Reader, at: str, port: Any) -> None:
    if not isinstance(port, Mapping):
        t.error(at, "must be an object")
        return
    number = port.get("containerPort")
    if number is None:
        t.error(f"{at}.containerPort", "required field is missing")
    elif isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
        t.error(f"{at}.containerPort", f"must be a port number 1..65535, got {describe(number)}")
    name = port.get("name")
    if name is None:
        return
    if not isinstance(name, str) or len(name) > c.MAX_PORT_NAME_LENGTH:
        t.error(f"{at}.name", f"must be a string of at most 15 characters, got {describe(name)}")
    elif not re.fullmatch(c.PORT_NAME_PATTERN, name):
        t.error(
            f"{at}.name",
            f"{name!r} must be an IANA service name: lower-case letters, digits and single '-' "
            "between them, at least one letter",
        )


def _check_env(t: Reader, at: str, var: Any) -> None:
    if not isinstance(var, Mapping):
        t.error(at, "must be an object")
        return
    name = var.get("name")
    if name is None:
        t.error(f"{at}.name", "required field is missing")
    elif not isinstance(name, str) or not re.fullmatch(c.ENV_VAR_NAME_PATTERN, name):
        t.error(
            f"{at}.name",
            f"{describe(name)} must be an environment variable name: letters, digits, '-', '_' "
            "and '.', not starting with a digit or '..'",
        )


def qualified_name_problem(key: str) -> str | None:
    """Why ``key`` is not a qualified name (a label or annotation key), or None if it is one."""
    prefix, slash, _ = key.rpartition("/")
    if slash and len(prefix) > c.MAX_QUALIFIED_PREFIX_LENGTH:
        return f"prefix must be at most {c.MAX_QUALIFIED_PREFIX_LENGTH} characters"
    if not re.fullmatch(c.QUALIFIED_NAME_PATTERN, key):
        return (
            "must be a qualified name: an optional DNS-1123 subdomain prefix and '/', then a "
            "name of at most 63 characters (letters, digits, '-', '_' and '.', starting and "
            "ending with a letter or digit)"
        )
    return None


def _string_map(t: Reader, at: str, value: Any) -> Mapping[Any, Any]:
    """Labels and annotations: maps of strings with qualified-name keys; bad entries reported."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        t.error(at, "must be a map of strings")
        return {}
    for key, item in value.items():
        problem = qualified_name_problem(key) if isinstance(key, str) else "must be a string"
        if problem is not None:
            t.error(f"{at}[{key}]", f"key {problem}")
        elif not isinstance(item, str):
            t.error(f"{at}[{key}]", f"must be a string, got {describe(item)}")
    return value


def _check_labels(t: Reader, at: str, value: Any) -> None:
    """Our own label keys are reserved; values are label values (<= 63 characters)."""
    labels = _string_map(t, at, value)
    if len(labels) > c.MAX_TEMPLATE_LABELS:
        t.error(at, f"must have at most {c.MAX_TEMPLATE_LABELS} labels, got {len(labels)}")
    for key, item in labels.items():
        if key in OPERATOR_LABELS:
            t.error(f"{at}[{key}]", "is set by the operator; remove it")
        elif not isinstance(item, str):
            continue
        elif len(item) > c.MAX_LABEL_VALUE_LENGTH:
            t.error(f"{at}[{key}]", f"value must be at most 63 characters, got {len(item)}")
        elif not re.fullmatch(c.LABEL_VALUE_PATTERN, item):
            t.error(
                f"{at}[{key}]",
                f"value {describe(item)} must be empty or letters, digits, '-', '_' and '.', "
                "starting and ending with a letter or digit",
            )


def _check_annotations(t: Reader, at: str, value: Any) -> None:
    """Keys are qualified names; keys and values together at most 256 KiB (UTF-8 bytes)."""
    annotations = _string_map(t, at, value)
    size = sum(
        len(str(k).encode()) + len(v.encode()) for k, v in annotations.items() if isinstance(v, str)
    )
    if size > c.MAX_ANNOTATIONS_BYTES:
        t.error(
            at,
            f"total size of keys and values must be at most {c.MAX_ANNOTATIONS_BYTES} bytes "
            f"(256 KiB), got {size}",
        )
