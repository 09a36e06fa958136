"""The sandbox's default scheduler: binds pending pods to nodes that fit.

Filters, as kube-scheduler's default plugins do: node readiness/unschedulable, NoSchedule and
NoExecute taints against tolerations, ``nodeSelector`` and required node affinity, and resource
requests (cpu, memory, ``nvidia.com/gpu``, any extended resource, and the pod count) against
allocatable minus what bound, unfinished pods request. Among fitting nodes it picks the least
allocated one (spreading), by name on ties, so placement is deterministic.

Pods with another ``schedulerName`` are left alone. A pod that fits nowhere gets
``PodScheduled=False, reason=Unschedulable`` with the scheduler's message
(``0/2 nodes are available: 2 Insufficient nvidia.com/gpu.``) and a ``FailedScheduling`` event,
and is retried whenever capacity may have appeared (a node added or changed, a pod deleted or
finished). State is maintained incrementally from store events, so a pass costs the pending
pods, not every pod in the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from elastrain.api import quantity
from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.events import EventRecorder
from elastrain_sandbox.apiserver.meta import set_condition, timestamp
from elastrain_sandbox.apiserver.store import Store, WatchEvent
from elastrain_sandbox.controllers.base import Controller

SCHEDULER_NAME = "default-scheduler"
PodKey = tuple[str, str]


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> dict[str, Any] | None:
    """The toleration matching ``taint`` (Kubernetes' ToleratesTaint), if any."""
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        op = t.get("operator", "Equal")
        if not t.get("key"):
            if op == "Exists":
                return t
            continue
        if t["key"] != taint.get("key"):
            continue
        if op == "Exists" or t.get("value", "") == taint.get("value", ""):
            return t
    return None


def _node_ready(node: dict[str, Any]) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _match_expr(labels: dict[str, str], expr: dict[str, Any]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator"), expr.get("values") or []
    have = key in labels
    if op == "In":
        return have and labels[key] in values
    if op == "NotIn":
        return not have or labels[key] not in values
    if op == "Exists":
        return have
    if op == "DoesNotExist":
        return not have
    if op in ("Gt", "Lt") and have and values:
        try:
            a, b = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def selector_matches(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if terms:
        fields = {"metadata.name": node["metadata"]["name"]}
        return any(
            all(_match_expr(labels, e) for e in term.get("matchExpressions") or [])
            and all(_match_expr(fields, e) for e in term.get("matchFields") or [])
            for term in terms
        )
    return True


def pod_requests_milli(pod: dict[str, Any]) -> dict[str, int]:
    """The pod's requests (``elastrain.api.quantity.pod_requests``, which the planner's PodGroup
    sizing uses too) in integer milli-units, rounded up: plain integer sums, so that a node
    filled to its allocatable never flips between fitting and not through rounding."""
    requests = quantity.pod_requests(pod.get("spec") or {})
    return {name: math.ceil(value * 1000) for name, value in requests.items()}


def _allocatable(node: dict[str, Any]) -> dict[str, int]:
    out = {}
    for k, v in ((node.get("status") or {}).get("allocatable") or {}).items():
        try:
            out[k] = quantity.milli(v)
        except ValueError:
            continue
    return out


def _bound_and_active(pod: dict[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName")) and (pod.get("status") or {}).get(
        "phase"
    ) not in (
        "Succeeded",
        "Failed",
    )


def _ours(pod: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return spec.get("schedulerName") in (None, "", SCHEDULER_NAME) and not spec.get("nodeName")


@dataclass(frozen=True)
class _NodeInfo:
    """What scheduling needs from a Node, computed when the node changes, not per pod."""

    node: dict[str, Any]
    alloc: dict[str, int]
    ready: bool
    unschedulable: bool
    hard_taints: list[dict[str, Any]]


def _constrained(pod: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("nodeSelector") or spec.get("affinity"))


class Scheduler(Controller):
    keys = frozenset({("", "pods"), ("", "nodes")})

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._events = EventRecorder(store, SCHEDULER_NAME)
        self._info: dict[str, _NodeInfo] = {}  # derived once per node change
        self._usage: dict[str, dict[str, int]] = {}
        self._placed: dict[PodKey, tuple[str, dict[str, int]]] = {}
        self._queue_pods: dict[PodKey, None] = {}  # ordered set of pods to try
        self._unschedulable: set[PodKey] = set()
        self._messages: dict[PodKey, str] = {}
        self._wake = asyncio.Event()
        self._pass_task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        super().start()
        for node in self.store.list("nodes").items:
            self._set_node(node)
        for pod in self.store.list("pods", copy=False).items:
            self._track(pod, None)
        self._pass_task = asyncio.get_running_loop().create_task(
            self._passes(), name="scheduler-passes"
        )
        self._wake.set()

    async def stop(self) -> None:
        await super().stop()
        if self._pass_task is not None:
            self._pass_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pass_task

    async def handle(self, ev: WatchEvent) -> None:
        if ev.rt.key == ("", "nodes"):
            name = ev.obj["metadata"]["name"]
            if ev.type == "DELETED":
                self._info.pop(name, None)
            else:
                self._set_node(ev.obj)
            self._retry_unschedulable()
            return
        self._track(
            ev.obj if ev.type != "DELETED" else None, ev.old if ev.type != "ADDED" else None, ev.obj
        )

    def _track(
        self,
        pod: dict[str, Any] | None,
        old: dict[str, Any] | None,
        any_state: dict[str, Any] | None = None,
    ) -> None:
        ref = pod or any_state or old
        assert ref is not None
        key = (ref["metadata"].get("namespace", ""), ref["metadata"]["name"])
        freed = False
        prev = self._placed.pop(key, None)
        if prev is not None:
            node, req = prev
            usage = self._usage.setdefault(node, {})
            for k, v in req.items():
                usage[k] = usage.get(k, 0) - v
            freed = True
        if pod is not None and _bound_and_active(pod):
            node = pod["spec"]["nodeName"]
            req = pod_requests_milli(pod)
            req["pods"] = 1000
            usage = self._usage.setdefault(node, {})
            for k, v in req.items():
                usage[k] = usage.get(k, 0) + v
            self._placed[key] = (node, req)
            freed = False if prev is not None and prev[0] == node and prev[1] == req else freed
        if pod is not None and _ours(pod) and not pod["metadata"].get("deletionTimestamp"):
            if key not in self._unschedulable:
                self._queue_pods[key] = None
                self._wake.set()
        else:
            self._queue_pods.pop(key, None)
            self._unschedulable.discard(key)
            self._messages.pop(key, None)
        if freed:
            self._retry_unschedulable()

    def _set_node(self, node: dict[str, Any]) -> None:
        spec = node.get("spec") or {}
        self._info[node["metadata"]["name"]] = _NodeInfo(
            node=node,
            alloc=_allocatable(node),
            ready=_node_ready(node),
            unschedulable=bool(spec.get("unschedulable")),
            hard_taints=[
                t
                for t in spec.get("taints") or []
                if t.get("effect") in ("NoSchedule", "NoExecute")
            ],
        )

    def _retry_unschedulable(self) -> None:
        for key in sorted(self._unschedulable):
            self._queue_pods[key] = None
        self._unschedulable.clear()
        if self._queue_pods:
            self._wake.set()

    async def _passes(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let queued store events update our view first
            done = 0
            while self._queue_pods:
                key = next(iter(self._queue_pods))
                del self._queue_pods[key]
                self._schedule_one(key)
                done += 1
                if done % 20 == 0:
                    await asyncio.sleep(0)  # keep serving API requests during a long pass

    def _fit(self, pod: dict[str, Any], name: str, req: dict[str, int]) -> list[str]:
        """Reasons node ``name`` does not fit ``pod`` (empty when it fits), cheapest first."""
        info = self._info[name]
        if info.hard_taints:
            tolerations = (pod.get("spec") or {}).get("tolerations") or []
            for taint in info.hard_taints:
                if tolerates(tolerations, taint) is None:
                    return [
                        "node(s) had untolerated taint "
                        f"{{{taint.get('key')}: {taint.get('value', '')}}}"
                    ]
        if info.unschedulable:
            return ["node(s) were unschedulable"]
        if not info.ready:
            return ["node(s) were not ready"]
        if _constrained(pod) and not selector_matches(pod, info.node):
            return ["node(s) didn't match Pod's node affinity/selector"]
        used = self._usage.get(name, {})
        reasons = []
        for k, v in req.items():
            if v > 0 and used.get(k, 0) + v > info.alloc.get(k, 0):
                reasons.append("Too many pods" if k == "pods" else f"Insufficient {k}")
        return sorted(reasons)

    def _score(self, name: str) -> tuple[float, str]:
        """Least allocated first (spreads load), by name on ties."""
        alloc = self._info[name].alloc
        used = self._usage.get(name, {})
        share = 0.0
        for k in ("cpu", "memory"):
            if alloc.get(k):
                share += used.get(k, 0) / alloc[k]
        return (share, name)

    def _schedule_one(self, key: PodKey) -> None:
        try:
            pod = self.store.get("pods", key[1], key[0])
        except ApiError:
            return
        if not _ours(pod) or pod["metadata"].get("deletionTimestamp"):
            return
        req = pod_requests_milli(pod)
        req["pods"] = 1000
        fitting = []
        reasons: Counter[str] = Counter()
        for node_name in self._info:
            why = self._fit(pod, node_name, req)
            if why:
                reasons.update(why)
            else:
                fitting.append(node_name)
        if fitting:
            name = min(fitting, key=self._score)
            try:
                bound = self.store.bind_pod(key[0], key[1], name)
            except ApiError:
                return
            self._track(bound, pod)
            self._events.record(
                bound, "Normal", "Scheduled", f"Successfully assigned {key[0]}/{key[1]} to {name}"
            )
            return
        total = len(self._info)
        detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        message = (
            f"0/{total} nodes are available: {detail}."
            if detail
            else f"0/{total} nodes are available."
        )
        if total == 0:
            message = "no nodes available to schedule pods"
        self._unschedulable.add(key)
        if self._messages.get(key) == message:
            return
        self._messages[key] = message
        status = pod.get("status") or {}
        set_condition(
            status,
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": timestamp(),
                "reason": "Unschedulable",
                "message": message,
            },
        )
        try:
            self.store.patch(
                "pods",
                key[1],
                {"status": {"conditions": status["conditions"]}},
                namespace=key[0],
                subresource="status",
            )
        except ApiError:
            return
        self._events.record(pod, "Warning", "FailedScheduling", message)
