"""Simulated nodes and the node lifecycle controllers around them.

``make_node`` builds a Node object as a kubelet would register it (capacity/allocatable for
cpu, memory, pods and ``nvidia.com/gpu``, the usual labels, a Ready condition).

``NodeLifecycle`` does what kube-controller-manager does for nodes:

* taints by condition: Ready=False adds ``node.kubernetes.io/not-ready``, Ready=Unknown adds
  ``node.kubernetes.io/unreachable`` (both NoSchedule and NoExecute, with ``timeAdded``), and a
  node that is Ready again loses them;
* taint-based eviction: a pod on a node with a NoExecute taint it does not tolerate is marked
  with ``DisruptionTarget`` (reason ``DeletionByTaintManager``) and deleted; a toleration with
  ``tolerationSeconds`` (the default ones carry the sandbox's eviction timeout) delays that;
* pod GC: pods bound to a node that no longer exists get ``DisruptionTarget`` (reason
  ``DeletionByPodGC``), phase Failed, and are force-deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
from typing import Any

from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.events import EventRecorder
from elastrain_sandbox.apiserver.meta import (
    micro_timestamp,
    now,
    parse_time,
    set_condition,
    timestamp,
)
from elastrain_sandbox.apiserver.store import Store, WatchEvent
from elastrain_sandbox.controllers.base import Controller
from elastrain_sandbox.controllers.scheduler import tolerates

GPU = "nvidia.com/gpu"
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
_CONDITION_TAINTS = (NOT_READY, UNREACHABLE)


def make_node(
    name: str,
    *,
    cpus: int = 8,
    gpus: int = 0,
    memory: str = "64Gi",
    pods: int = 110,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, Any]] | None = None,
    address: str = "127.0.0.1",
) -> dict[str, Any]:
    """A Node as its kubelet registers it (ready, with the standard labels)."""
    capacity = {"cpu": str(cpus), "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi"}
    node_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "elastrain-sandbox",
    }
    if gpus:
        capacity[GPU] = str(gpus)
        node_labels["nvidia.com/gpu.present"] = "true"
        node_labels["nvidia.com/gpu.count"] = str(gpus)
    node_labels.update(labels or {})
    now_ts = timestamp()

    def cond(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": type_,
            "status": status,
            "lastHeartbeatTime": now_ts,
            "lastTransitionTime": now_ts,
            "reason": reason,
            "message": message,
        }

    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node_labels},
        "spec": {"taints": list(taints or [])} if taints else {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                cond(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                cond(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                cond(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.37.0-sandbox",
                "kubeProxyVersion": "v1.37.0-sandbox",
                "osImage": "Elastrain sandbox",
                "kernelVersion": platform.release(),
                "containerRuntimeVersion": "elastrain-sandbox://0.1.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "machineID": name,
                "systemUUID": name,
                "bootID": str(os.getpid()),
            },
        },
    }


def node_lease(node: dict[str, Any]) -> dict[str, Any]:
    """The node's heartbeat Lease in ``kube-node-lease`` (owned by the Node, so it goes with it).

    The sandbox's kubelets do not heartbeat: ``renewTime`` is the registration time and
    readiness changes only through the admin API.
    """
    md = node["metadata"]
    return {
        "metadata": {
            "name": md["name"],
            "namespace": "kube-node-lease",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": md["name"], "uid": md["uid"]}
            ],
        },
        "spec": {
            "holderIdentity": md["name"],
            "leaseDurationSeconds": 40,
            "renewTime": micro_timestamp(),
        },
    }


def ready_condition(ready: bool | None) -> dict[str, Any]:
    """The Ready condition for ready (True), not ready (False) or unreachable (None)."""
    ts = timestamp()
    if ready:
        return {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": ts,
            "lastTransitionTime": ts,
        }
    if ready is None:
        return {
            "type": "Ready",
            "status": "Unknown",
            "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
            "lastHeartbeatTime": ts,
            "lastTransitionTime": ts,
        }
    return {
        "type": "Ready",
        "status": "False",
        "reason": "KubeletNotReady",
        "message": "container runtime is down",
        "lastHeartbeatTime": ts,
        "lastTransitionTime": ts,
    }


def set_node_ready(store: Store, name: str, ready: bool | None) -> dict[str, Any]:
    """Flip a node's Ready condition (what a kubelet or its silence would do)."""
    node = store.get("nodes", name)
    status = node.get("status") or {}
    set_condition(status, ready_condition(ready))
    return store.patch(
        "nodes", name, {"status": {"conditions": status["conditions"]}}, subresource="status"
    )


def _ready_status(node: dict[str, Any]) -> str:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status", "Unknown"))
    return "Unknown"


def _desired_condition_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    status = _ready_status(node)
    if status == "True":
        return []
    key = NOT_READY if status == "False" else UNREACHABLE
    return [{"key": key, "effect": "NoSchedule"}, {"key": key, "effect": "NoExecute"}]


class NodeLifecycle(Controller):
    keys = frozenset({("", "nodes"), ("", "pods")})

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._events = EventRecorder(store, "node-controller")
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}

    def start(self) -> None:
        super().start()
        for node in self.store.list("nodes").items:
            self._queue_put(node)

    def _queue_put(self, node: dict[str, Any]) -> None:
        assert self._queue is not None
        rt = self.store.resolve("nodes")
        self._queue.put_nowait(WatchEvent("MODIFIED", rt, node, None, 0))

    async def stop(self) -> None:
        for t in self._timers.values():
            t.cancel()
        await super().stop()

    async def handle(self, ev: WatchEvent) -> None:
        if ev.rt.key == ("", "nodes"):
            name = ev.obj["metadata"]["name"]
            self._node_events(ev)
            if ev.type == "DELETED":
                for pod in self.store.list("pods", field_selector=f"spec.nodeName={name}").items:
                    self._pod_gc(pod)
                return
            if self._reconcile_taints(ev.obj):
                return  # the taint update comes back as its own event
            for pod in self.store.list("pods", field_selector=f"spec.nodeName={name}").items:
                self._check_pod(pod, ev.obj)
            return
        pod = ev.obj
        node_name = (pod.get("spec") or {}).get("nodeName")
        if ev.type == "DELETED" or not node_name:
            return
        try:
            node = self.store.get("nodes", node_name)
        except ApiError:
            self._pod_gc(pod)
            return
        self._check_pod(pod, node)

    def _node_events(self, ev: WatchEvent) -> None:
        """The node controller's events: registration, readiness flips, removal."""
        name = ev.obj["metadata"]["name"]
        if ev.type == "ADDED" and ev.rv:
            self._events.record(
                ev.obj,
                "Normal",
                "RegisteredNode",
                f"Node {name} event: Registered Node {name} in Controller",
            )
        elif ev.type == "DELETED":
            self._events.record(
                ev.obj,
                "Normal",
                "RemovingNode",
                f"Node {name} event: Removing Node {name} from Controller",
            )
        elif ev.old is not None and _ready_status(ev.old) != _ready_status(ev.obj):
            state = "NodeReady" if _ready_status(ev.obj) == "True" else "NodeNotReady"
            self._events.record(ev.obj, "Normal", state, f"Node {name} status is now: {state}")

    def _reconcile_taints(self, node: dict[str, Any]) -> bool:
        spec = node.get("spec") or {}
        taints = spec.get("taints") or []
        keep = [t for t in taints if t.get("key") not in _CONDITION_TAINTS]
        want = _desired_condition_taints(node)
        existing = {
            (t.get("key"), t.get("effect")): t for t in taints if t.get("key") in _CONDITION_TAINTS
        }
        merged = []
        for t in want:
            old = existing.get((t["key"], t["effect"]))
            if old is not None:
                merged.append(old)
            else:
                merged.append({**t, "timeAdded": timestamp()} if t["effect"] == "NoExecute" else t)
        new = keep + merged
        if new == taints:
            return False
        try:
            self.store.patch("nodes", node["metadata"]["name"], {"spec": {"taints": new or None}})
        except ApiError:
            return False
        return True

    def _check_pod(self, pod: dict[str, Any], node: dict[str, Any]) -> None:
        md = pod["metadata"]
        key = (md.get("namespace", ""), md["name"])
        if md.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in (
            "Succeeded",
            "Failed",
        ):
            self._cancel(key)
            return
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        wait: float | None = None
        evict_now = False
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") != "NoExecute":
                continue
            tol = tolerates(tolerations, taint)
            if tol is None:
                evict_now = True
                break
            if tol.get("tolerationSeconds") is None:
                continue
            added = parse_time(taint.get("timeAdded")) or now()
            remaining = float(tol["tolerationSeconds"]) - (now() - added).total_seconds()
            wait = remaining if wait is None else min(wait, remaining)
        if evict_now or (wait is not None and wait <= 0):
            self._cancel(key)
            self._evict(key)
        elif wait is not None:
            if key not in self._timers:
                loop = asyncio.get_running_loop()
                self._timers[key] = loop.call_later(wait, self._timer_fired, key)
        else:
            self._cancel(key)

    def _cancel(self, key: tuple[str, str]) -> None:
        t = self._timers.pop(key, None)
        if t is not None:
            t.cancel()

    def _timer_fired(self, key: tuple[str, str]) -> None:
        self._timers.pop(key, None)
        try:
            pod = self.store.get("pods", key[1], key[0])
            node = self.store.get("nodes", pod["spec"]["nodeName"])
        except (ApiError, KeyError):
            return
        self._check_pod(pod, node)

    def _mark(self, pod: dict[str, Any], reason: str, message: str, failed: bool) -> None:
        md = pod["metadata"]
        status = pod.get("status") or {}
        set_condition(
            status,
            {
                "type": "DisruptionTarget",
                "status": "True",
                "lastTransitionTime": timestamp(),
                "reason": reason,
                "message": message,
            },
        )
        patch: dict[str, Any] = {"conditions": status["conditions"]}
        if failed:
            patch["phase"] = "Failed"
        with contextlib.suppress(ApiError):
            self.store.patch(
                "pods",
                md["name"],
                {"status": patch},
                namespace=md.get("namespace"),
                subresource="status",
            )

    def _evict(self, key: tuple[str, str]) -> None:
        try:
            pod = self.store.get("pods", key[1], key[0])
        except ApiError:
            return
        self._mark(
            pod,
            "DeletionByTaintManager",
            "Taint manager: deleting due to NoExecute taint",
            failed=False,
        )
        self._events.record(
            pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key[0]}/{key[1]}"
        )
        with contextlib.suppress(ApiError):
            self.store.delete("pods", key[1], key[0], preconditions={"uid": pod["metadata"]["uid"]})

    def _pod_gc(self, pod: dict[str, Any]) -> None:
        md = pod["metadata"]
        self._mark(pod, "DeletionByPodGC", "PodGC: node no longer exists", failed=True)
        with contextlib.suppress(ApiError):
            self.store.delete(
                "pods",
                md["name"],
                md.get("namespace"),
                grace_period_seconds=0,
                preconditions={"uid": md["uid"]},
            )
