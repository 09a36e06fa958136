"""The kubelet's duties toward an API server, beyond running pods: for an agent on an
``HttpSource`` (the real control plane), where no embedded runtime registers nodes for it.

For each node it registers:

* the Node object (capacity and allocatable cpu, memory, pods, ``nvidia.com/gpu``;
  ``addresses`` InternalIP = the agent's ``host_ip``, Hostname; the daemon endpoint's port,
  one per node (``KubeletApi.open_node``);
  ``nodeInfo``; conditions with Ready True);
* a Lease in ``kube-node-lease``, owned by the Node, renewed every ``heartbeat`` seconds: the
  node lifecycle controller marks a node whose lease goes stale NotReady (Ready Unknown), then
  taints it and evicts;
* node status: Ready True is posted again whenever the API shows anything else (after a
  partition) and every ``STATUS_REPORT`` seconds otherwise, as the kubelet's
  ``nodeStatusReportFrequency``.

And the node-admin operations tests drive (``NodeAdmin``): ``add_node``; ``remove_node`` (the
machine is gone: its pods are killed and the Node deleted); ``set_node_ready(False | None)``
(a partition: the lease is no longer renewed and the agent stops acting for the node, so the
real control plane finds out as it would) and ``set_node_ready(True)`` (reconnect).

Identity: the agent acts with the kubeconfig it is given (the admin certificate on the real
control plane), one identity for all the nodes it serves; see docs/sandbox-agent.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from elastrain_sandbox.agent.agent import NodeAgent
from elastrain_sandbox.agent.httpsource import HttpSource
from elastrain_sandbox.agent.kubeclient import MERGE_PATCH, STRATEGIC_PATCH
from elastrain_sandbox.agent.source import Obj, SourceError
from elastrain_sandbox.controllers.nodes import make_node

log = logging.getLogger(__name__)

LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
LEASE_DURATION = 40
STATUS_REPORT = 60.0


def _micro(t: float | None = None) -> str:
    return datetime.fromtimestamp(t or time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ready(node: Obj | None) -> str | None:
    for cond in ((node or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status"))
    return None


@dataclass
class NodeShape:
    """What a registered node offers the scheduler."""

    cpus: int = 8
    memory: str = "64Gi"
    gpus: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, Any]] = field(default_factory=list)


WEBSOCKET_FEATURE = "ExtendWebSocketsToKubelet"


class DaemonPorts(Protocol):
    """Who listens for each node's kubelet API (``KubeletApi``)."""

    async def open_node(self, node: str) -> int: ...

    async def close_node(self, node: str) -> None: ...


class Kubelet:
    """Registers and heartbeats the agent's nodes; ``start()`` after ``agent.start()``."""

    def __init__(
        self,
        agent: NodeAgent,
        source: HttpSource,
        *,
        ports: DaemonPorts,
        heartbeat: float = 10.0,
    ) -> None:
        self.agent = agent
        self.source = source
        self.client = source.client
        self.ports = ports
        self.heartbeat = heartbeat
        self._nodes: dict[str, NodeShape] = {}
        self._cut: set[str] = set()
        self._reported: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._beat(), name="kubelet heartbeats")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- node admin ------------------------------------------------------------------------

    async def add_node(self, name: str, shape: NodeShape) -> Obj:
        """Register ``name`` (Node, Lease) and start running its pods."""
        self._nodes[name] = shape
        self.agent.serve(name)
        self.source.watch_node(name)
        node = make_node(
            name,
            cpus=shape.cpus,
            gpus=shape.gpus,
            memory=shape.memory,
            labels=shape.labels,
            taints=shape.taints,
            address=self.agent.host_ip,
        )
        port = await self.ports.open_node(name)
        node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port}}
        # Our kubelet API speaks WebSocket exec: kube-apiserver then proxies kubectl's stream
        # to it as it is, instead of translating it to SPDY (which it does not speak).
        node["status"]["declaredFeatures"] = [WEBSOCKET_FEATURE]
        try:
            created = await self._register(name, node)
        except BaseException:
            await self.ports.close_node(name)
            raise
        await self._renew(name, created)
        self._reported[name] = time.monotonic()
        return created

    async def _register(self, name: str, node: Obj) -> Obj:
        """POST the Node, or (it exists: a re-registration) PATCH its status."""
        try:
            return await self.client.request("POST", "/api/v1/nodes", node)
        except SourceError as exc:
            if exc.code != 409:
                raise
            return await self.client.request(
                "PATCH",
                f"/api/v1/nodes/{name}/status",
                {"status": node["status"]},
                content_type=STRATEGIC_PATCH,
            )

    async def remove_node(self, name: str) -> None:
        """The machine is gone: kill its pods, stop heartbeating and delete the Node (its
        Lease goes with it, by owner reference; its pods are left to pod GC)."""
        self._nodes.pop(name, None)
        self._cut.discard(name)
        self.agent.machine_gone(name)
        await self.ports.close_node(name)
        await self.source.unwatch_node(name)
        with contextlib.suppress(SourceError):
            await self.client.request("DELETE", f"/api/v1/nodes/{name}")

    async def set_node_ready(self, name: str, ready: bool | None) -> Obj:
        """False or None: cut ``name`` off (no lease, no status, no pod work); True: back."""
        if name not in self._nodes:
            raise KeyError(f"node {name} is not served by this agent")
        if ready:
            self._cut.discard(name)
            self.agent.cut_off(name, False)
            await self._renew(name, None)
            await self._post_status(name)
        else:
            self._cut.add(name)
            self.agent.cut_off(name, True)
        return await self.client.get(f"/api/v1/nodes/{name}")

    # -- heartbeats ------------------------------------------------------------------------

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            live = [n for n in self._nodes if n not in self._cut]
            results = await asyncio.gather(
                *(self._heartbeat(n) for n in live), return_exceptions=True
            )
            for name, result in zip(live, results, strict=True):
                if isinstance(result, Exception):
                    log.warning("node %s: heartbeat failed: %s", name, result)

    async def _heartbeat(self, name: str) -> None:
        await self._renew(name, None)
        node = self.source.node(name)
        due = time.monotonic() - self._reported.get(name, 0.0) >= STATUS_REPORT
        if due or _ready(node) != "True":
            await self._post_status(name)

    async def _renew(self, name: str, node: Obj | None) -> None:
        """Renew the node's Lease, creating it (owned by the Node) if missing."""
        if name in self._cut:
            return
        spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION}
        try:
            await self.client.request(
                "PATCH",
                f"{LEASES}/{name}",
                {"spec": {**spec, "renewTime": _micro()}},
                content_type=MERGE_PATCH,
            )
            return
        except SourceError as exc:
            if exc.code != 404:
                raise
        node = node or await self.client.get(f"/api/v1/nodes/{name}")
        owner = {
            "apiVersion": "v1",
            "kind": "Node",
            "name": name,
            "uid": node["metadata"]["uid"],
        }
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "ownerReferences": [owner]},
            "spec": {**spec, "renewTime": _micro()},
        }
        with contextlib.suppress(SourceError):  # 409: created meanwhile, renewed next beat
            await self.client.request("POST", LEASES, lease)

    async def _post_status(self, name: str) -> None:
        """Ready True (with a fresh heartbeat time), as the kubelet's status update."""
        if name in self._cut:
            return
        node = self.source.node(name)
        now = _now()
        ready = _ready(node) == "True"
        transition = now
        if ready and node is not None:
            for cond in node["status"]["conditions"]:
                if cond.get("type") == "Ready":
                    transition = cond.get("lastTransitionTime") or now
        condition = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": now,
            "lastTransitionTime": transition,
        }
        await self.client.request(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            {"status": {"conditions": [condition]}},
            content_type=STRATEGIC_PATCH,
        )
        self._reported[name] = time.monotonic()
