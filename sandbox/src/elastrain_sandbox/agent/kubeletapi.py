"""The kubelet API on each node's daemon port: logs, exec and resource metrics.

kube-apiserver proxies ``pods/log`` to ``https://<InternalIP>:<daemon port>/containerLogs/
<ns>/<pod>/<container>``, presenting its kubelet client certificate and checking ours against
the cluster CA (``--kubelet-certificate-authority``). The agent's nodes share one address (its
``host_ip``), so each node gets a port of its own (:meth:`KubeletApi.open_node`, which the
Node's ``daemonEndpoints`` names): one server, one listening socket per node, and a request's
local port says which node it was sent to. That matters for ``/metrics/resource``, which
metrics-server scrapes node by node and which must list that node's containers alone.

Served: ``/healthz``; ``/containerLogs`` with ``follow``, ``tailLines``, ``limitBytes`` and
``previous``, read from the files the agent writes for each container run (``containerlogs``,
as the embedded server's ``pods/log``); ``/exec`` over WebSocket (``execsession``, as the
embedded server's ``pods/exec``): the agent's Nodes declare ``ExtendWebSocketsToKubelet`` in
``status.declaredFeatures``, so kube-apiserver proxies kubectl's WebSocket to the kubelet as it
is instead of translating it to SPDY; and ``/metrics/resource``, the kubelet's resource
metrics in the Prometheus text format metrics-server reads (``usage``). Not served:
``/attach``, ``/portForward``, ``/stats`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from elastrain_sandbox import containerlogs, execsession
from elastrain_sandbox.agent import usage
from elastrain_sandbox.binds import require_private
from elastrain_sandbox.execsession import ExecBackend
from elastrain_sandbox.ports import free_port

PodLookup = Callable[[str, str], dict[str, Any] | None]
RunningLookup = Callable[[], list[usage.Running]]


class KubeletApi:
    """``start(host)``, then ``open_node(name)`` for each node; TLS with ``cert``/``key``, and
    client certificates must chain to ``client_ca`` (the API server's kubelet client, and
    metrics-server's). ``running`` lists the live containers (``NodeAgent.running``)."""

    def __init__(
        self,
        state_dir: Path,
        pod: PodLookup,
        *,
        cert: Path,
        key: Path,
        client_ca: Path | None,
        exec_backend: ExecBackend | None = None,
        running: RunningLookup | None = None,
    ) -> None:
        self.state_dir = state_dir
        self._pod = pod
        self._exec = exec_backend
        self._running = running
        self._meter = usage.Meter()
        self._scrape_lock = asyncio.Lock()
        self._cert, self._key, self._client_ca = cert, key, client_ca
        self._runner: web.AppRunner | None = None
        self._context: ssl.SSLContext | None = None
        self._host = ""
        self._sites: dict[str, tuple[int, web.TCPSite]] = {}  # node -> its port and socket
        self._node_at: dict[int, str] = {}  # local port -> node

    async def start(self, host: str) -> None:
        require_private(host, "the node agent's kubelet API")
        self._host = host
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics/resource", self._resource_metrics)
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self._logs)
        if self._exec is not None:
            # kube-apiserver proxies a WebSocket exec straight here (no SPDY translation) for
            # nodes that declare ExtendWebSocketsToKubelet, as the agent's Nodes do.
            app.router.add_get("/exec/{ns}/{pod}/{container}", self._exec_stream)
            app.router.add_post("/exec/{ns}/{pod}/{container}", self._exec_stream)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self._cert), str(self._key))
        if self._client_ca is not None:
            context.load_verify_locations(cafile=str(self._client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
        self._context = context
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()

    async def open_node(self, node: str) -> int:
        """Listen for ``node`` on a port of its own and return it (the same one if open)."""
        if node in self._sites:
            return self._sites[node][0]
        assert self._runner is not None, "start() first"
        port = free_port()
        site = web.TCPSite(
            self._runner, self._host, port, ssl_context=self._context, reuse_address=True
        )
        await site.start()
        self._sites[node] = (port, site)
        self._node_at[port] = node
        return port

    async def close_node(self, node: str) -> None:
        """Stop listening for ``node`` (its machine is gone)."""
        if node in self._sites:
            port, site = self._sites.pop(node)
            self._node_at.pop(port, None)
            await site.stop()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._sites.clear()
        self._node_at.clear()

    async def _healthz(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["ns"], request.match_info["pod"]
        container = request.match_info["container"]
        pod = self._pod(ns, name)
        if pod is None:
            raise web.HTTPNotFound(text=f'pod "{name}" in namespace "{ns}" not found')

        def refuse(message: str) -> Exception:
            return web.HTTPBadRequest(text=message)

        return await containerlogs.serve(
            request, self.state_dir, pod, container, lambda: self._pod(ns, name), refuse
        )

    async def _resource_metrics(self, request: web.Request) -> web.StreamResponse:
        """The kubelet's ``/metrics/resource`` for the node this port serves."""
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        node = self._node_at.get(int(sockname[1])) if sockname else None
        if node is None or self._running is None:
            raise web.HTTPNotFound(text="no node is served on this port")
        async with self._scrape_lock:  # one snapshot, scan and read at a time (``Meter``)
            running = self._running()
            scanned = await asyncio.to_thread(usage.scan)
            samples, nodes = self._meter.read(running, scanned)
        text = usage.exposition(node, [s for s in samples if s.running.node == node], nodes)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def _exec_stream(self, request: web.Request) -> web.StreamResponse:
        """``/exec/<ns>/<pod>/<container>?command=...&input=1&output=1&error=1&tty=1``: the
        kubelet's parameter names, which kube-apiserver sets from ``pods/exec``'s."""
        assert self._exec is not None
        ns, name = request.match_info["ns"], request.match_info["pod"]
        container = request.match_info["container"]
        q = request.query
        command = q.getall("command", [])
        if not command:
            raise web.HTTPBadRequest(text="you must specify at least 1 command")
        try:
            argv, env = self._exec.exec_argv(ns, name, container, list(command))
        except LookupError as exc:
            raise web.HTTPBadRequest(text=f"unable to upgrade connection: {exc}") from exc
        ws = await execsession.stream(
            request, argv, env, stdin=_flag(q, "input"), tty=_flag(q, "tty")
        )
        if ws is None:
            raise web.HTTPBadRequest(
                text="exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io)"
            )
        return ws


def _flag(query: Any, name: str) -> bool:
    return str(query.get(name, "")).lower() in ("1", "true")
