"""``Sandbox``: the sandbox in-process, on a private event loop in a background thread.

Threading model: ``start()`` creates a daemon thread that owns one asyncio loop; the API
server, watches, controllers and the node agent all run there. The calling thread talks to it
over HTTP (``.url``, ``.kubeconfig_path``) or through the lock-protected ``.store``; node
operations (``add_node``...) are plain store writes and safe from any thread. ``stop()`` asks
the loop to shut everything down (the agent kills every process it started), joins the thread
and removes a temporary state directory it created.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Unpack

from elastrain_sandbox.admin import NodeOptions
from elastrain_sandbox.apiserver.requestlog import RequestLog
from elastrain_sandbox.apiserver.store import Store
from elastrain_sandbox.loopthread import LoopThread
from elastrain_sandbox.runtime import SandboxConfig, SandboxRuntime

START_TIMEOUT = 60.0


class Sandbox:
    """An embedded cluster: ``with Sandbox(nodes=2) as sb: kubectl --kubeconfig "
    "sb.kubeconfig_path``."""

    def __init__(
        self,
        nodes: int = 2,
        gpus_per_node: int = 0,
        cpus_per_node: int = 8,
        memory_per_node: str = "64Gi",
        state_dir: Path | None = None,
        port: int = 0,
        *,
        eviction_timeout: int = 30,
        bookmark_interval: float = 30.0,
        history: int = 50_000,
        agent: bool = True,
        agent_options: dict[str, Any] | None = None,
        kubeconfig_path: Path | None = None,
    ) -> None:
        self._own_dir = state_dir is None
        root = (
            Path(tempfile.mkdtemp(prefix="elastrain-sandbox-"))
            if state_dir is None
            else Path(state_dir)
        )
        self.state_dir = root
        self.config = SandboxConfig(
            state_dir=root,
            kubeconfig_path=kubeconfig_path or root / "kubeconfig",
            nodes=nodes,
            gpus_per_node=gpus_per_node,
            cpus_per_node=cpus_per_node,
            memory_per_node=memory_per_node,
            port=port,
            eviction_timeout=eviction_timeout,
            bookmark_interval=bookmark_interval,
            history=history,
            agent=agent,
            agent_options=dict(agent_options or {}),
        )
        self.runtime = SandboxRuntime(self.config)
        self._thread = LoopThread("elastrain-sandbox", self.runtime.start, self.runtime.stop)

    # ------------------------------------------------------------------ properties
    @property
    def store(self) -> Store:
        return self.runtime.store

    @property
    def url(self) -> str:
        return self.runtime.url

    @property
    def kubeconfig_path(self) -> Path:
        return self.config.kubeconfig_path

    @property
    def request_log(self) -> RequestLog:
        return self.runtime.request_log

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Sandbox:
        self._thread.start(START_TIMEOUT)
        return self

    def stop(self) -> None:
        if not self._thread.running:
            return
        self._thread.stop(timeout=60)
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the sandbox's loop and return its result (for in-loop helpers)."""
        return self._thread.call(coro, timeout)

    # ------------------------------------------------------------------ node admin
    def add_node(self, name: str, **options: Unpack[NodeOptions]) -> dict[str, Any]:
        """Register a node (as a kubelet joining the cluster would)."""
        return self.runtime.add_node(name, **options)

    def remove_node(self, name: str) -> None:
        """Delete the Node object; pod GC then fails and removes its pods."""
        self.runtime.remove_node(name)

    def set_node_ready(self, name: str, ready: bool | None = True) -> dict[str, Any]:
        """Ready (True), NotReady (False) or unreachable (None: Ready=Unknown)."""
        return self.runtime.set_node_ready(name, ready)
