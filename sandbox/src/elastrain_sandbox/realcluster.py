"""``RealCluster``: the real control plane with the node agent as the kubelet of its nodes.

One call gives a local cluster that runs pods: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler (``controlplane.RealControlPlane``), then the node agent on an
``HttpSource`` (the admin kubeconfig) with its kubelet duties (Node objects, Leases, status) and
the kubelet API (``kubectl logs``) on the nodes' daemon port.

Threading model, as ``Sandbox``: the control plane is child processes; the agent runs on a
private asyncio loop in a daemon thread. The node-admin methods (``NodeAdmin``) may be called
from any thread: they run on that loop and return its result. ``stop()`` stops the agent (which
kills every pod process) and then the control plane, leaving no process behind.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Unpack

from elastrain_sandbox.admin import NodeOptions
from elastrain_sandbox.agent.agent import NodeAgent
from elastrain_sandbox.agent.apiaccess import ApiAccess
from elastrain_sandbox.agent.httpsource import HttpSource
from elastrain_sandbox.agent.kubelet import Kubelet, NodeShape
from elastrain_sandbox.agent.kubeletapi import KubeletApi
from elastrain_sandbox.agent.source import SourceError
from elastrain_sandbox.controlplane.cluster import RealControlPlane
from elastrain_sandbox.controlplane.pki import Pki
from elastrain_sandbox.loopthread import LoopThread

START_TIMEOUT = 120.0
CALL_TIMEOUT = 60.0
DEFAULT_HEARTBEAT = 10.0
READY_TIMEOUT = 60.0


class NodeSide:
    """The agent half, on the loop: ``HttpSource`` + ``NodeAgent`` + ``Kubelet`` + the kubelet
    API, with the admin identity (see docs/sandbox-agent.md, "On the real control plane")."""

    def __init__(
        self,
        state_dir: Path,
        control_plane: RealControlPlane,
        *,
        heartbeat: float,
        agent_options: dict[str, Any],
    ) -> None:
        self.state_dir = state_dir
        self.control_plane = control_plane
        self.source = HttpSource(control_plane.kubeconfig_path, nodes=[])
        url = urllib.parse.urlsplit(control_plane.url)
        upstream = (str(url.hostname), int(url.port or 443))
        self.agent = NodeAgent(
            self.source,
            state_dir,
            nodes=[],
            api_access=ApiAccess(upstream, self.source),
            **agent_options,
        )
        self.heartbeat = heartbeat
        self.kubelet: Kubelet | None = None
        self.api: KubeletApi | None = None
        self._started: list[str] = []

    async def start(self) -> None:
        keys = self.control_plane.keys
        assert keys is not None, "start the control plane first"
        await self._wait_default_account()
        await self.agent.start()
        self._started.append("agent")
        host = self.agent.host_ip
        await asyncio.to_thread((self.state_dir / "pki").mkdir, parents=True, exist_ok=True)
        serving = await asyncio.to_thread(
            keys.serving,
            self.state_dir / "pki",
            "kubelet",
            dns=("localhost",),
            ips=tuple(dict.fromkeys((host, "127.0.0.1"))),
        )
        self.api = KubeletApi(
            self.state_dir,
            lambda ns, name: self.source.lookup("Pod", ns, name),
            cert=serving.cert,
            key=serving.key,
            client_ca=keys.ca.cert,
            exec_backend=self.agent,
            running=self.agent.running,
        )
        await self.api.start(host)
        self.kubelet = Kubelet(self.agent, self.source, ports=self.api, heartbeat=self.heartbeat)
        await self.kubelet.start()

    async def _wait_default_account(self) -> None:
        """Pods are refused until the service-account controller has made ``default``."""
        client = self.source.client
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        path = "/api/v1/namespaces/default/serviceaccounts/default"
        while True:
            try:
                await client.get(path)
                return
            except SourceError:
                if loop.time() > deadline:
                    raise
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self.kubelet is not None:
            await self.kubelet.stop()
        if self.api is not None:
            await self.api.stop()
        if self._started:
            await self.agent.stop()  # stops the source too
        else:
            await self.source.stop()

    def _kubelet(self) -> Kubelet:
        assert self.kubelet is not None, "start() first"
        return self.kubelet

    async def add_node(self, name: str, options: dict[str, Any]) -> dict[str, Any]:
        return await self._kubelet().add_node(name, NodeShape(**options))

    async def remove_node(self, name: str) -> None:
        await self._kubelet().remove_node(name)

    async def set_node_ready(self, name: str, ready: bool | None) -> dict[str, Any]:
        return await self._kubelet().set_node_ready(name, ready)


class RealCluster:
    """``with RealCluster(state_dir, kubeconfig, bin_dir, nodes=2) as rc: kubectl ...``.

    ``node_monitor_grace_period`` (seconds) shortens how long kube-controller-manager waits for
    a silent node before marking it NotReady (default: the controller's own, 50 s); the agent
    then renews leases four times per grace period so a live node never flaps. ``agent=False``
    starts the control plane alone (pods stay Pending). ``apiserver_args`` are extra
    kube-apiserver flags (the benchmarks' audit log). ``metrics_server`` adds the real
    metrics-server, scraping the agent's nodes (``kubectl top``, HorizontalPodAutoscalers).
    """

    def __init__(
        self,
        state_dir: Path,
        kubeconfig_path: Path,
        bin_dir: Path,
        *,
        nodes: int = 2,
        cpus_per_node: int = 8,
        memory_per_node: str = "64Gi",
        gpus_per_node: int = 0,
        agent: bool = True,
        agent_options: dict[str, Any] | None = None,
        node_monitor_grace_period: float | None = None,
        apiserver_args: Sequence[str] = (),
        metrics_server: bool = False,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.metrics_server = metrics_server
        self.nodes = nodes
        self.cpus_per_node = cpus_per_node
        self.memory_per_node = memory_per_node
        self.gpus_per_node = gpus_per_node
        self.with_agent = agent
        self.agent_options = dict(agent_options or {})
        self.heartbeat = DEFAULT_HEARTBEAT
        if node_monitor_grace_period is not None:
            self.heartbeat = min(DEFAULT_HEARTBEAT, node_monitor_grace_period / 4)
        self.control_plane = RealControlPlane(
            self.state_dir / "control-plane",
            Path(kubeconfig_path),
            Path(bin_dir),
            node_monitor_grace_period=node_monitor_grace_period,
            apiserver_args=tuple(apiserver_args),
        )
        self._node: NodeSide | None = None  # built on the loop
        self._thread = LoopThread("the node agent", self._start_agent, self._stop_agent)

    # ------------------------------------------------------------------ properties
    @property
    def url(self) -> str:
        return self.control_plane.url

    @property
    def kubeconfig_path(self) -> Path:
        return self.control_plane.kubeconfig_path

    @property
    def keys(self) -> Pki | None:
        return self.control_plane.keys

    @property
    def agent(self) -> NodeAgent | None:
        """The ``NodeAgent`` (None without one): tests read ``node_reachable`` from it."""
        return None if self._node is None else self._node.agent

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> RealCluster:
        self.control_plane.start()
        if not self.with_agent:
            return self
        try:
            self._thread.start(START_TIMEOUT)
            if self.metrics_server:
                assert self.agent is not None
                self.control_plane.start_metrics_server(self.agent.host_ip)
        except BaseException:
            self.stop()
            raise
        return self

    async def _start_agent(self) -> None:
        self._node = NodeSide(
            self.state_dir / "agent",
            self.control_plane,
            heartbeat=self.heartbeat,
            agent_options=self.agent_options,
        )
        await self._node.start()
        for i in range(self.nodes):
            await self._node.add_node(f"node-{i}", self._options({}))

    async def _stop_agent(self) -> None:
        if self._node is not None:
            await self._node.stop()

    def stop(self) -> None:
        """Stop the agent (every pod process goes), then the control plane."""
        self._thread.stop(timeout=90)
        self.control_plane.stop()

    def __enter__(self) -> RealCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _side(self) -> NodeSide:
        if not self._thread.running or self._node is None:
            raise RuntimeError("no node agent: start() with agent=True first")
        return self._node

    def _options(self, options: NodeOptions) -> dict[str, Any]:
        cpus, gpus = options.get("cpus"), options.get("gpus")
        return {
            "cpus": self.cpus_per_node if cpus is None else cpus,
            "gpus": self.gpus_per_node if gpus is None else gpus,
            "memory": options.get("memory") or self.memory_per_node,
            "labels": dict(options.get("labels") or {}),
            "taints": list(options.get("taints") or []),
        }

    # ------------------------------------------------------------------ node admin
    def add_node(self, name: str, **options: Unpack[NodeOptions]) -> dict[str, Any]:
        """Register a node served by the agent (Node, Lease, heartbeats)."""
        return self._thread.call(self._side().add_node(name, self._options(options)), CALL_TIMEOUT)

    def remove_node(self, name: str) -> None:
        """The machine is gone: the agent kills its pods and deletes the Node."""
        self._thread.call(self._side().remove_node(name), CALL_TIMEOUT)

    def set_node_ready(self, name: str, ready: bool | None = True) -> dict[str, Any]:
        """False or None: a partition (no lease renewal, the agent stops acting for the
        node; the node lifecycle controller then marks it NotReady); True: reconnect."""
        return self._thread.call(self._side().set_node_ready(name, ready), CALL_TIMEOUT)
