"""Defaulting and validation for the built-in kinds, as the API server's registry does it.

Enough to make objects look like a cluster's (pod defaults such as ``restartPolicy: Always``
and ``schedulerName: default-scheduler``, service cluster IPs) and to answer obviously bad
objects with 422 and field causes; it is not the full ``k8s.io/kubernetes`` validation.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import threading
from typing import Any

from elastrain_sandbox.apiserver import errors
from elastrain_sandbox.apiserver.meta import (
    annotation_size_errors,
    dns_label_errors,
    dns_subdomain_errors,
)
from elastrain_sandbox.apiserver.resources import ResourceType
from elastrain_sandbox.apiserver.store import AdmissionRequest

Cause = tuple[str, str, str]  # (reason, field, message)
_REQUIRED = "FieldValueRequired"
_INVALID = "FieldValueInvalid"
_NOT_SUPPORTED = "FieldValueNotSupported"
_DUPLICATE = "FieldValueDuplicate"
_FORBIDDEN = "FieldValueForbidden"

# Labels a DNS label name is required for (the rest need a DNS subdomain).
_LABEL_NAMED = {("", "namespaces"), ("", "services")}


def _name_causes(rt: ResourceType, obj: dict[str, Any]) -> list[Cause]:
    name = obj["metadata"].get("name", "")
    if rt.key in (("", "events"), ("events.k8s.io", "events")):
        return []  # event names carry dots and are generated
    check = dns_label_errors if rt.key in _LABEL_NAMED else dns_subdomain_errors
    return [(_INVALID, "metadata.name", f'Invalid value: "{name}": {m}') for m in check(name)]


def _label_causes(obj: dict[str, Any]) -> list[Cause]:
    out: list[Cause] = []
    for v in (obj["metadata"].get("labels") or {}).values():
        if not isinstance(v, str) or len(v) > 63:
            out.append(
                (
                    _INVALID,
                    "metadata.labels",
                    f'Invalid value: "{v}": must be no more than 63 characters',
                )
            )
    for k, v in (obj["metadata"].get("annotations") or {}).items():
        if not isinstance(v, str):
            out.append((_INVALID, f"metadata.annotations[{k}]", "Invalid value: must be a string"))
    annotations = obj["metadata"].get("annotations")
    out += [(_INVALID, "metadata.annotations", m) for m in annotation_size_errors(annotations)]
    return out


class BuiltinAdmission:
    """The admitter for every built-in resource (registered by the Sandbox)."""

    def __init__(self, service_cidr: str = "10.96.0.0/16", toleration_seconds: int = 300) -> None:
        self._toleration_seconds = toleration_seconds
        self._lock = threading.Lock()
        net = ipaddress.ip_network(service_cidr)
        self._ips = itertools.islice(net.hosts(), 10, None)  # .1-.10 reserved, as kube does

    def admit(self, req: AdmissionRequest) -> dict[str, Any]:
        rt, obj, old, subresource = req.rt, req.obj, req.old, req.subresource
        causes = _name_causes(rt, obj) + _label_causes(obj) if old is None else _label_causes(obj)
        hook = getattr(self, f"_{rt.kind.lower()}", None)
        if hook is not None and not (rt.group and rt.kind == "Event"):
            causes += hook(obj, old, subresource)
        if causes:
            raise errors.invalid(rt.kind, rt.group, obj["metadata"].get("name", ""), causes)
        return obj

    # ------------------------------------------------------------------ per kind
    def _namespace(
        self, obj: dict[str, Any], old: dict[str, Any] | None, sub: str | None
    ) -> list[Cause]:
        if old is None:
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        return []

    def _pod(self, obj: dict[str, Any], old: dict[str, Any] | None, sub: str | None) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [(_REQUIRED, "spec", "Required value")]
        if old is None:
            obj["status"] = {}  # a created pod's status is the registry's, never the client's
            _default_pod(obj, self._toleration_seconds)
        causes: list[Cause] = []
        containers = spec.get("containers")
        if not containers:
            causes.append((_REQUIRED, "spec.containers", "Required value"))
        seen: set[str] = set()
        for group in ("initContainers", "containers"):
            for i, c in enumerate(spec.get(group) or []):
                path = f"spec.{group}[{i}]"
                if not isinstance(c, dict):
                    causes.append((_INVALID, path, "Invalid value: must be an object"))
                    continue
                name = c.get("name")
                if not name:
                    causes.append((_REQUIRED, f"{path}.name", "Required value"))
                else:
                    causes += [
                        (_INVALID, f"{path}.name", f'Invalid value: "{name}": {m}')
                        for m in dns_label_errors(name)
                    ]
                    if name in seen:
                        causes.append((_DUPLICATE, f"{path}.name", f'Duplicate value: "{name}"'))
                    seen.add(name)
                if not c.get("image"):
                    causes.append((_REQUIRED, f"{path}.image", "Required value"))
        policy = spec.get("restartPolicy")
        if policy not in ("Always", "OnFailure", "Never"):
            causes.append(
                (
                    _NOT_SUPPORTED,
                    "spec.restartPolicy",
                    f'Unsupported value: "{policy}": supported values: "Always", '
                    '"OnFailure", "Never"',
                )
            )
        if old is not None and sub is None:
            causes += _pod_immutable(old, obj)
        return causes

    def _service(
        self, obj: dict[str, Any], old: dict[str, Any] | None, sub: str | None
    ) -> list[Cause]:
        spec = obj.setdefault("spec", {})
        causes: list[Cause] = []
        stype = spec.setdefault("type", "ClusterIP")
        if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            causes.append((_NOT_SUPPORTED, "spec.type", f'Unsupported value: "{stype}"'))
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        for i, p in enumerate(spec.get("ports") or []):
            if (
                not isinstance(p, dict)
                or not isinstance(p.get("port"), int)
                or not 0 < p["port"] < 65536
            ):
                causes.append(
                    (
                        _INVALID,
                        f"spec.ports[{i}].port",
                        "Invalid value: must be between 1 and 65535, inclusive",
                    )
                )
                continue
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p["port"])
        if not spec.get("ports") and spec.get("clusterIP") != "None" and stype != "ExternalName":
            causes.append((_REQUIRED, "spec.ports", "Required value"))
        if old is not None:
            old_ip = (old.get("spec") or {}).get("clusterIP")
            if spec.get("clusterIP", old_ip) != old_ip:
                causes.append((_INVALID, "spec.clusterIP", "Invalid value: field is immutable"))
            spec["clusterIP"] = old_ip
            spec["clusterIPs"] = (old.get("spec") or {}).get("clusterIPs", [old_ip])
        elif spec.get("clusterIP") != "None" and stype != "ExternalName":
            if not spec.get("clusterIP"):
                with self._lock:
                    spec["clusterIP"] = str(next(self._ips))
            spec["clusterIPs"] = [spec["clusterIP"]]
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
        if old is None:
            obj["status"] = {"loadBalancer": {}}  # the registry's, never the client's
        return causes

    def _node(
        self, obj: dict[str, Any], old: dict[str, Any] | None, sub: str | None
    ) -> list[Cause]:
        causes: list[Cause] = []
        for i, t in enumerate((obj.get("spec") or {}).get("taints") or []):
            if t.get("effect") not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
                causes.append(
                    (
                        _NOT_SUPPORTED,
                        f"spec.taints[{i}].effect",
                        f'Unsupported value: "{t.get("effect")}"',
                    )
                )
        return causes

    def _secret(
        self, obj: dict[str, Any], old: dict[str, Any] | None, sub: str | None
    ) -> list[Cause]:
        obj.setdefault("type", "Opaque")
        # stringData is write-only: merged into data (base64) as the apiserver does.
        for k, v in (obj.pop("stringData", None) or {}).items():
            obj.setdefault("data", {})[k] = base64.b64encode(str(v).encode()).decode()
        return []

    def _event(
        self, obj: dict[str, Any], old: dict[str, Any] | None, sub: str | None
    ) -> list[Cause]:
        if not obj.get("involvedObject"):
            return [(_REQUIRED, "involvedObject", "Required value")]
        return []


def _default_pod(obj: dict[str, Any], toleration_seconds: int) -> None:
    spec = obj["spec"]
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("securityContext", {})
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    keys = {t.get("key") for t in tolerations if isinstance(t, dict)}
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if key not in keys:  # the DefaultTolerationSeconds admission plugin
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": toleration_seconds,
                }
            )
    for group in ("initContainers", "containers"):
        for c in spec.get(group) or []:
            if not isinstance(c, dict):
                continue
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault(
                "imagePullPolicy",
                "Always"
                if str(c.get("image", "")).endswith(":latest") or ":" not in str(c.get("image", ""))
                else "IfNotPresent",
            )
            res = c.setdefault("resources", {})
            limits = res.get("limits") or {}
            if limits:
                # Requests default to limits when only limits are given (apiserver defaulting).
                requests = res.setdefault("requests", {})
                for k, v in limits.items():
                    requests.setdefault(k, v)
            for p in c.get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")
    status = obj.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", _qos_class(spec))


def _qos_class(spec: dict[str, Any]) -> str:
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    reqs = [((c.get("resources") or {}).get("requests") or {}) for c in containers]
    lims = [((c.get("resources") or {}).get("limits") or {}) for c in containers]
    if not any(reqs) and not any(lims):
        return "BestEffort"
    guaranteed = all(
        lim.get("cpu")
        and lim.get("memory")
        and req.get("cpu", lim["cpu"]) == lim["cpu"]
        and req.get("memory", lim["memory"]) == lim["memory"]
        for req, lim in zip(reqs, lims, strict=True)
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _pod_immutable(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """Pod updates may only change images, activeDeadlineSeconds, tolerations (additions) and
    scheduling gates; the sandbox also lets the scheduler set ``nodeName`` once."""
    ospec, nspec = old.get("spec") or {}, new.get("spec") or {}
    if ospec.get("nodeName") and nspec.get("nodeName") != ospec.get("nodeName"):
        return [(_INVALID, "spec.nodeName", "Invalid value: field is immutable once set")]
    mutable = {
        "activeDeadlineSeconds",
        "tolerations",
        "schedulingGates",
        "nodeName",
        "containers",
        "initContainers",
    }
    changed = {
        k for k in set(ospec) | set(nspec) if k not in mutable and ospec.get(k) != nspec.get(k)
    }

    def _strip(cs: list[Any]) -> list[Any]:
        return [{k: v for k, v in c.items() if k != "image"} for c in cs if isinstance(c, dict)]

    for group in ("containers", "initContainers"):
        if _strip(ospec.get(group) or []) != _strip(nspec.get(group) or []):
            changed.add(group)
    if changed:
        return [
            (
                _FORBIDDEN,
                "spec",
                "Forbidden: pod updates may not change fields other than "
                "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
                "existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to "
                "be set to 1 if it was previously negative)",
            )
        ]
    return []
