"""``meta.k8s.io/v1`` Table responses, which ``kubectl get`` asks for.

Columns follow the API server's printers for the built-in kinds (``kubectl get pods`` shows
NAME READY STATUS RESTARTS AGE, ``-o wide`` adds IP and NODE...) and a CRD's
``additionalPrinterColumns`` for custom resources. Columns with ``priority > 0`` are only shown
by kubectl with ``-o wide``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from elastrain_sandbox.apiserver import jsonpath
from elastrain_sandbox.apiserver.meta import now, parse_time
from elastrain_sandbox.apiserver.resources import ResourceType

Obj = dict[str, Any]
Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority, cell


def human_duration(seconds: float) -> str:
    """``k8s.io/apimachinery/pkg/util/duration.HumanDuration``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def age(ts: str | None) -> str:
    when = parse_time(ts)
    if when is None:
        return "<unknown>"
    return human_duration((now() - when).total_seconds())


def _age(o: Obj) -> str:
    return age(o["metadata"].get("creationTimestamp"))


def _name(o: Obj) -> str:
    return str(o["metadata"]["name"])


# ------------------------------------------------------------------------------- pods
def pod_ready(o: Obj) -> str:
    statuses = (o.get("status") or {}).get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    ready = sum(1 for s in statuses if s.get("ready"))
    return f"{ready}/{total}"


def pod_status(o: Obj) -> str:
    """The STATUS column, following kubectl's ``printPod`` reasoning."""
    status = o.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for cs in status.get("initContainerStatuses") or []:
        state = cs.get("state") or {}
        term = state.get("terminated")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
            break
        waiting = state.get("waiting")
        if waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
            break
    else:
        running = False
        for cs in reversed(status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif (state.get("terminated") or {}).get("reason"):
                reason = state["terminated"]["reason"]
            elif state.get("terminated"):
                term = state["terminated"]
                reason = (
                    f"Signal:{term['signal']}"
                    if term.get("signal")
                    else f"ExitCode:{term.get('exitCode')}"
                )
            elif state.get("running") and cs.get("ready"):
                running = True
        if reason == "Completed" and running:
            reason = "Running"
    if o["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _restarts(o: Obj) -> int:
    return sum(
        int(s.get("restartCount", 0))
        for s in (o.get("status") or {}).get("containerStatuses") or []
    )


def _or_none(v: Any) -> Any:
    return v if v not in (None, "") else "<none>"


POD: list[Column] = [
    ("Name", "string", 0, _name),
    ("Ready", "string", 0, pod_ready),
    ("Status", "string", 0, pod_status),
    ("Restarts", "string", 0, lambda o: str(_restarts(o))),
    ("Age", "string", 0, _age),
    ("IP", "string", 1, lambda o: _or_none((o.get("status") or {}).get("podIP"))),
    ("Node", "string", 1, lambda o: _or_none((o.get("spec") or {}).get("nodeName"))),
    (
        "Nominated Node",
        "string",
        1,
        lambda o: _or_none((o.get("status") or {}).get("nominatedNodeName")),
    ),
    ("Readiness Gates", "string", 1, lambda o: "<none>"),
]


def _ports(o: Obj) -> str:
    out = []
    for p in (o.get("spec") or {}).get("ports") or []:
        s = f"{p.get('port')}"
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        out.append(f"{s}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _selector(o: Obj) -> str:
    sel = (o.get("spec") or {}).get("selector") or {}
    return ",".join(f"{k}={v}" for k, v in sel.items()) or "<none>"


SERVICE: list[Column] = [
    ("Name", "string", 0, _name),
    ("Type", "string", 0, lambda o: (o.get("spec") or {}).get("type", "ClusterIP")),
    ("Cluster-IP", "string", 0, lambda o: _or_none((o.get("spec") or {}).get("clusterIP"))),
    ("External-IP", "string", 0, lambda o: "<none>"),
    ("Port(s)", "string", 0, _ports),
    ("Age", "string", 0, _age),
    ("Selector", "string", 1, _selector),
]


def node_status(o: Obj) -> str:
    ready = next(
        (c for c in (o.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
        None,
    )
    out = (
        "Ready" if ready and ready.get("status") == "True" else ("NotReady" if ready else "Unknown")
    )
    if (o.get("spec") or {}).get("unschedulable"):
        out += ",SchedulingDisabled"
    return out


def _node_roles(o: Obj) -> str:
    roles = [
        k.split("/", 1)[1]
        for k in (o["metadata"].get("labels") or {})
        if k.startswith("node-role.kubernetes.io/")
    ]
    return ",".join(sorted(roles)) or "<none>"


def _node_addr(o: Obj, kind: str) -> str:
    for a in (o.get("status") or {}).get("addresses") or []:
        if a.get("type") == kind:
            return str(a.get("address"))
    return "<none>"


def _node_info(key: str) -> Callable[[Obj], Any]:
    return lambda o: ((o.get("status") or {}).get("nodeInfo") or {}).get(key, "<unknown>")


NODE: list[Column] = [
    ("Name", "string", 0, _name),
    ("Status", "string", 0, node_status),
    ("Roles", "string", 0, _node_roles),
    ("Age", "string", 0, _age),
    ("Version", "string", 0, _node_info("kubeletVersion")),
    ("Internal-IP", "string", 1, lambda o: _node_addr(o, "InternalIP")),
    ("External-IP", "string", 1, lambda o: _node_addr(o, "ExternalIP")),
    ("OS-Image", "string", 1, _node_info("osImage")),
    ("Kernel-Version", "string", 1, _node_info("kernelVersion")),
    ("Container-Runtime", "string", 1, _node_info("containerRuntimeVersion")),
]


def _event_object(o: Obj) -> str:
    ref = o.get("involvedObject") or o.get("regarding") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def _event_last_seen(o: Obj) -> str:
    ts = (
        o.get("lastTimestamp")
        or o.get("eventTime")
        or (o.get("series") or {}).get("lastObservedTime")
    )
    return age(ts or o["metadata"].get("creationTimestamp"))


EVENT: list[Column] = [
    ("Last Seen", "string", 0, _event_last_seen),
    ("Type", "string", 0, lambda o: o.get("type", "")),
    ("Reason", "string", 0, lambda o: o.get("reason", "")),
    ("Object", "string", 0, _event_object),
    ("Message", "string", 0, lambda o: o.get("message") or o.get("note", "")),
    ("Subobject", "string", 1, lambda o: (o.get("involvedObject") or {}).get("fieldPath", "")),
    (
        "Source",
        "string",
        1,
        lambda o: (o.get("source") or {}).get("component", o.get("reportingController", "")),
    ),
    (
        "First Seen",
        "string",
        1,
        lambda o: age(o.get("firstTimestamp") or o["metadata"].get("creationTimestamp")),
    ),
    ("Count", "string", 1, lambda o: str(o.get("count", 1))),
    ("Name", "string", 1, _name),
]

NAMESPACE: list[Column] = [
    ("Name", "string", 0, _name),
    ("Status", "string", 0, lambda o: (o.get("status") or {}).get("phase", "Active")),
    ("Age", "string", 0, _age),
]

_DATA = ("Data", "integer", 0, lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))

BY_KIND: dict[tuple[str, str], list[Column]] = {
    ("", "Pod"): POD,
    ("", "Service"): SERVICE,
    ("", "Node"): NODE,
    ("", "Event"): EVENT,
    ("events.k8s.io", "Event"): EVENT,
    ("", "Namespace"): NAMESPACE,
    ("", "ConfigMap"): [("Name", "string", 0, _name), _DATA, ("Age", "string", 0, _age)],
    ("", "Secret"): [
        ("Name", "string", 0, _name),
        ("Type", "string", 0, lambda o: o.get("type", "Opaque")),
        _DATA,
        ("Age", "string", 0, _age),
    ],
    ("", "ServiceAccount"): [
        ("Name", "string", 0, _name),
        ("Secrets", "integer", 0, lambda o: len(o.get("secrets") or [])),
        ("Age", "string", 0, _age),
    ],
    ("", "PersistentVolumeClaim"): [
        ("Name", "string", 0, _name),
        ("Status", "string", 0, lambda o: (o.get("status") or {}).get("phase", "Pending")),
        ("Volume", "string", 0, lambda o: (o.get("spec") or {}).get("volumeName", "")),
        (
            "Capacity",
            "string",
            0,
            lambda o: ((o.get("status") or {}).get("capacity") or {}).get("storage", ""),
        ),
        (
            "Access Modes",
            "string",
            0,
            lambda o: ",".join((o.get("spec") or {}).get("accessModes") or []),
        ),
        (
            "StorageClass",
            "string",
            0,
            lambda o: _or_none((o.get("spec") or {}).get("storageClassName")),
        ),
        ("Age", "string", 0, _age),
    ],
    ("coordination.k8s.io", "Lease"): [
        ("Name", "string", 0, _name),
        ("Holder", "string", 0, lambda o: (o.get("spec") or {}).get("holderIdentity", "")),
        ("Age", "string", 0, _age),
    ],
    ("apiextensions.k8s.io", "CustomResourceDefinition"): [
        ("Name", "string", 0, _name),
        ("Created At", "date", 0, lambda o: o["metadata"].get("creationTimestamp")),
    ],
}

_DEFAULT: list[Column] = [("Name", "string", 0, _name), ("Age", "string", 0, _age)]


def _cell(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "date":
        return age(str(value))
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, int | float):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _column_cell(path: str, kind: str) -> Callable[[Obj], Any]:
    return lambda o: _cell(kind, jsonpath.get(o, path))


def _custom_columns(rt: ResourceType) -> list[Column]:
    cols: list[Column] = [("Name", "string", 0, _name)]
    for c in rt.printer_columns:
        path, kind = c.get("jsonPath", ""), c.get("type", "string")
        cols.append(
            (
                c.get("name", ""),
                kind,
                int(c.get("priority", 0)),
                _column_cell(path, kind),
            )
        )
    return cols


def columns_for(rt: ResourceType) -> list[Column]:
    if rt.custom:
        return _custom_columns(rt)
    return BY_KIND.get((rt.group, rt.kind), _DEFAULT)


def _column_defs(rt: ResourceType, cols: list[Column]) -> list[dict[str, Any]]:
    out = []
    desc = {c.get("name"): c.get("description", "") for c in rt.printer_columns}
    for name, kind, prio, _fn in cols:
        out.append(
            {
                "name": name,
                "type": "string" if kind == "date" else kind,
                "format": "name" if name == "Name" and _fn is _name else "",
                "description": desc.get(name, name),
                "priority": prio,
            }
        )
    return out


def _row_object(o: Obj, include: str) -> Any:
    if include == "None":
        return None
    if include == "Object":
        return o
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": o["metadata"],
    }


def table(
    rt: ResourceType,
    objs: list[Obj],
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str | None = None,
    with_columns: bool = True,
) -> dict[str, Any]:
    """A Table of ``objs`` (rows carry PartialObjectMetadata unless ``includeObject`` says)."""
    cols = columns_for(rt)
    rows = []
    for o in objs:
        cells = []
        for *_meta, fn in cols:
            try:
                cells.append(fn(o))
            except (KeyError, TypeError, ValueError, AttributeError):
                cells.append(None)
        row: dict[str, Any] = {"cells": cells}
        obj = _row_object(o, include_object)
        if obj is not None:
            row["object"] = obj
        rows.append(row)
    md: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        md["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": md,
        "columnDefinitions": _column_defs(rt, cols) if with_columns else None,
        "rows": rows,
    }
