"""A container's environment and command line, resolved as the kubelet resolves them.

``$(VAR)`` references in ``env`` values expand against variables defined earlier in the list;
in ``command``/``args`` against the final environment. ``$$`` escapes a dollar; a reference
to an undefined variable stays as written. Downward-API ``fieldRef``/``resourceFieldRef``
values come from the pod object and the node's capacity; ``configMapKeyRef``/``secretKeyRef``
and ``envFrom`` go through a :class:`ObjectLookup`, so that the phase-1 runtime works without
a store and the agent wires the store in.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from elastrain.api.quantity import parse_float as parse_quantity

Obj = Mapping[str, Any]
# (kind "ConfigMap"/"Secret", namespace, name) -> the object, or None when absent.
ObjectLookup = Callable[[str, str, str], Obj | None]

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")
_LABEL_PATH = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ConfigError(Exception):
    """The container cannot be configured (the kubelet's ``CreateContainerConfigError``)."""


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion of ``value`` against ``env``."""

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REF.sub(repl, value)


def field_value(pod: Obj, path: str, *, pod_ip: str, host_ip: str) -> str:
    """A downward-API ``fieldRef.fieldPath`` of ``pod``."""
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace", "default"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return "" if simple[path] is None else str(simple[path])
    match = _LABEL_PATH.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def node_capacity() -> dict[str, float]:
    """What a limit falls back to when unset: the node's allocatable, as on a real node."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": float(os.cpu_count() or 1), "memory": float(memory), "ephemeral-storage": 0.0}


def resource_value(container: Obj, ref: Obj) -> str:
    """A ``resourceFieldRef`` (``limits.cpu``, ``requests.memory``...), rounded up like kubelet."""
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not name:
        raise ConfigError(f"unsupported resourceFieldRef resource {resource!r}")
    resources = container.get("resources") or {}
    raw = (resources.get(kind) or {}).get(name)
    if raw is None and kind == "requests":
        raw = (resources.get("limits") or {}).get(name)
    try:
        amount = parse_quantity(raw) if raw is not None else node_capacity().get(name, 0.0)
        divisor = parse_quantity(ref.get("divisor") or "1")
    except ValueError as exc:
        raise ConfigError(f"resourceFieldRef {resource}: {exc}") from exc
    if divisor <= 0:
        raise ConfigError(f"resourceFieldRef {resource}: divisor must be positive")
    return str(max(math.ceil(amount / divisor - 1e-9), 1 if amount > 0 else 0))


def _key_value(source: Obj, kind: str, namespace: str, lookup: ObjectLookup | None) -> str | None:
    name, key = str(source.get("name", "")), str(source.get("key", ""))
    obj = lookup(kind, namespace, name) if lookup else None
    value = _data(obj, kind).get(key) if obj is not None else None
    if value is None:
        if source.get("optional"):
            return None
        missing = f'{kind.lower()} "{name}" not found' if obj is None else f"key {key!r} not found"
        raise ConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}: {missing}")
    return value


def _data(obj: Obj, kind: str) -> dict[str, str]:
    """String data of a ConfigMap or Secret (Secret ``data`` is base64, ``stringData`` not)."""
    out: dict[str, str] = {}
    if kind == "Secret":
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v).decode(errors="replace")
        out.update(obj.get("stringData") or {})
    else:
        out.update(obj.get("data") or {})
    return out


def container_env(
    pod: Obj,
    container: Obj,
    *,
    pod_ip: str,
    host_ip: str,
    base: Mapping[str, str],
    lookup: ObjectLookup | None = None,
) -> dict[str, str]:
    """The environment a container starts with: ``base``, then ``envFrom``, then ``env``."""
    namespace = str(pod.get("metadata", {}).get("namespace", "default"))
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix", ""))
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if field not in source:
                continue
            ref = source[field]
            obj = lookup(kind, namespace, str(ref.get("name"))) if lookup else None
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind.lower()} "{ref.get("name")}" not found')
            for k, v in _data(obj, kind).items():
                env[prefix + k] = v
    for item in container.get("env") or []:
        name = str(item["name"])
        if "value" in item or "valueFrom" not in item:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        source = item["valueFrom"]
        value: str | None
        if "fieldRef" in source:
            value = field_value(
                pod, source["fieldRef"]["fieldPath"], pod_ip=pod_ip, host_ip=host_ip
            )
        elif "resourceFieldRef" in source:
            value = resource_value(
                _named_container(pod, source["resourceFieldRef"], container),
                source["resourceFieldRef"],
            )
        elif "configMapKeyRef" in source:
            value = _key_value(source["configMapKeyRef"], "ConfigMap", namespace, lookup)
        elif "secretKeyRef" in source:
            value = _key_value(source["secretKeyRef"], "Secret", namespace, lookup)
        else:
            raise ConfigError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            env[name] = value
    return env


def _named_container(pod: Obj, ref: Obj, default: Obj) -> Obj:
    wanted = ref.get("containerName")
    if not wanted:
        return default
    for c in pod.get("spec", {}).get("containers") or []:
        if c.get("name") == wanted:
            return c
    raise ConfigError(f"resourceFieldRef names unknown container {wanted!r}")


def command_line(container: Obj, env: Mapping[str, str], default: Sequence[str]) -> list[str]:
    """``command`` (or the image default) + ``args``, expanded against the final env."""
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    if not command:
        if not default:
            raise ConfigError(
                "no command given and the sandbox knows no entrypoint for image "
                f"{container.get('image')!r}; set `command` in the container spec"
            )
        command = list(default)
    return [expand(part, env) for part in command + args]
