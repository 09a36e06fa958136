"""Assembling a sandbox: store, admission, API server, controllers and the node agent.

``SandboxRuntime`` is the async core and runs on whatever event loop starts it: the CLI runs it
on the main thread's loop; ``elastrain_sandbox.Sandbox`` runs it on a private loop in a
background thread for tests. Everything asynchronous (HTTP serving, watches, controllers, the
node agent) lives on that one loop; the store is lock-protected, so other threads may call its
Python API directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Unpack

from aiohttp import web

from elastrain_sandbox.admin import NodeOptions, install_admin_routes
from elastrain_sandbox.apiserver.admission import BuiltinAdmission
from elastrain_sandbox.apiserver.crds import CRD_KEY, CrdAdmission, CrdCleanup, CrdRegistrar
from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.execstream import ExecBackend
from elastrain_sandbox.apiserver.requestlog import RequestLog
from elastrain_sandbox.apiserver.server import ApiServer
from elastrain_sandbox.apiserver.store import Store
from elastrain_sandbox.binds import require_private
from elastrain_sandbox.controllers import nodes as nodes_mod
from elastrain_sandbox.controllers.gc import GarbageCollector
from elastrain_sandbox.controllers.nodes import NodeLifecycle
from elastrain_sandbox.controllers.scheduler import Scheduler
from elastrain_sandbox.kubeconfig import TOKEN, write_kubeconfig

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Agent(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class SandboxConfig:
    """Everything that shapes a sandbox; the CLI and ``Sandbox`` both build one."""

    state_dir: Path
    kubeconfig_path: Path
    nodes: int = 2
    gpus_per_node: int = 0
    cpus_per_node: int = 8
    memory_per_node: str = "64Gi"
    port: int = 0
    host: str = "127.0.0.1"
    # tolerationSeconds of the default not-ready/unreachable tolerations (the eviction timeout).
    eviction_timeout: int = 30
    bookmark_interval: float = 30.0
    history: int = 50_000
    agent: bool = True
    agent_options: dict[str, Any] = field(default_factory=dict)
    # How the node agent follows the cluster: "http" lists and watches this API server like any
    # other (the same agent code serves the real control plane); "store" listens to the
    # in-process store (tests of the agent alone).
    agent_transport: str = "http"


class SandboxRuntime:
    def __init__(self, config: SandboxConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store or Store(history=config.history)
        self.request_log = RequestLog()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._controllers: list[Any] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.agent: Agent | None = None
        # The nodes' InternalIP: loopback until the agent knows its address (``host_ip``).
        self.node_address = "127.0.0.1"
        self.server = ApiServer(
            self.store,
            state_dir=config.state_dir,
            request_log=self.request_log,
            bookmark_interval=config.bookmark_interval,
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        cfg = self.config
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        builtin = BuiltinAdmission(toleration_seconds=cfg.eviction_timeout)
        for rt in self.store.resource_types():
            if not rt.custom:
                self.store.set_admitter(rt.key, builtin)
        self.store.set_admitter(CRD_KEY, CrdAdmission())
        registrar = CrdRegistrar(self.store)
        registrar.bind(asyncio.get_running_loop())
        self.store.add_listener(registrar)
        for ns in SYSTEM_NAMESPACES:
            self._ensure("namespaces", {"metadata": {"name": ns}})
            self._ensure("serviceaccounts", {"metadata": {"name": "default", "namespace": ns}})
        for i in range(cfg.nodes):
            self.add_node(f"node-{i}")
        install_admin_routes(self.server.admin_routes, self.request_log, self)
        self._runner = web.AppRunner(self.server.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        # Bind the socket ourselves so the port chosen for --port 0 is known without poking
        # at aiohttp's internals.
        require_private(cfg.host, "the sandbox API server")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((cfg.host, cfg.port))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://{cfg.host}:{sock.getsockname()[1]}"
        for ctl in (GarbageCollector(self.store), Scheduler(self.store), NodeLifecycle(self.store)):
            ctl.start()
            self._controllers.append(ctl)
        cleanup = CrdCleanup(self.store, registrar)
        self._tasks.append(
            asyncio.get_running_loop().create_task(cleanup.run(), name="crd-cleanup")
        )
        if cfg.agent:
            self.agent = _make_agent(self.store, cfg, self.url)
            if self.agent is not None:
                await self.agent.start()
                if isinstance(self.agent, ExecBackend):
                    self.server.exec_backend = self.agent
                self._adopt_agent_address(self.agent)
        write_kubeconfig(cfg.kubeconfig_path, self.url)

    def _adopt_agent_address(self, agent: Agent) -> None:
        """Give every node the agent's address as its InternalIP, so that Node addresses
        and the pods' ``status.hostIP`` agree as they do on a cluster."""
        host_ip = getattr(agent, "host_ip", None)
        if not isinstance(host_ip, str) or host_ip == self.node_address:
            return
        self.node_address = host_ip
        for node in self.store.list("nodes").items:
            addresses = [
                {**a, "address": host_ip} if a.get("type") == "InternalIP" else a
                for a in (node.get("status") or {}).get("addresses") or []
            ]
            with contextlib.suppress(ApiError):  # removed meanwhile: nothing to fix
                self.store.patch(
                    "nodes",
                    node["metadata"]["name"],
                    {"status": {"addresses": addresses}},
                    subresource="status",
                )

    def _ensure(self, resource: str, obj: dict[str, Any]) -> None:
        """Create ``obj``; an existing one (AlreadyExists) is fine."""
        try:
            self.store.create(resource, obj)
        except ApiError as err:
            if err.code != 409:
                raise

    async def stop(self) -> None:
        if self.agent is not None:
            try:
                await self.agent.stop()
            except Exception:
                log.exception("node agent failed to stop cleanly")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for ctl in reversed(self._controllers):
            await ctl.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    # --------------------------------------------------------------- node admin
    def add_node(self, name: str, **options: Unpack[NodeOptions]) -> dict[str, Any]:
        """Register a node (as a kubelet joining the cluster would), with its Lease."""
        cfg = self.config
        cpus, gpus = options.get("cpus"), options.get("gpus")
        node = nodes_mod.make_node(
            name,
            cpus=cfg.cpus_per_node if cpus is None else cpus,
            gpus=cfg.gpus_per_node if gpus is None else gpus,
            memory=options.get("memory") or cfg.memory_per_node,
            labels=options.get("labels"),
            taints=options.get("taints"),
            address=self.node_address,
        )
        created = self.store.create("nodes", node)
        self._ensure("leases", nodes_mod.node_lease(created))
        return created

    def remove_node(self, name: str) -> None:
        self.store.delete("nodes", name)

    def set_node_ready(self, name: str, ready: bool | None) -> dict[str, Any]:
        return nodes_mod.set_node_ready(self.store, name, ready)


def _make_agent(store: Store, cfg: SandboxConfig, url: str) -> Agent | None:
    """The node agent from ``elastrain_sandbox.agent`` (one agent runs every node's pods),
    following this sandbox over its HTTP API by default, as it follows a real one."""
    try:
        from elastrain_sandbox.agent import NodeAgent
        from elastrain_sandbox.agent.httpsource import HttpSource
        from elastrain_sandbox.agent.kubeclient import KubeClient, KubeConfig
    except ImportError as exc:
        log.warning("node agent unavailable (%s): pods are scheduled but never run", exc)
        return None
    if cfg.agent_transport == "store":
        agent: Agent = NodeAgent(store, cfg.state_dir, **cfg.agent_options)
        return agent
    client = KubeClient(KubeConfig(url, token=TOKEN), user_agent="elastrain-sandbox-agent")
    return NodeAgent(HttpSource(client), cfg.state_dir, **cfg.agent_options)
