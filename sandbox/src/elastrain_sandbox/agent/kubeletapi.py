"""The kubelet API on the nodes' daemon port, for ``kubectl logs`` through a real kube-apiserver.

kube-apiserver proxies ``pods/log`` to ``https://<InternalIP>:<daemon port>/containerLogs/
<ns>/<pod>/<container>``, presenting its kubelet client certificate and checking ours against
the cluster CA (``--kubelet-certificate-authority``). One server serves every node of the agent:
they share one address (the agent's ``host_ip``), hence one port.

Served: ``/healthz``; ``/containerLogs`` with ``follow``, ``tailLines``, ``limitBytes`` and
``previous``, read from the files the agent writes for each container run (``containerlogs``,
as the embedded server's ``pods/log``); and ``/exec`` over WebSocket (``execsession``, as the
embedded server's ``pods/exec``): the agent's Nodes declare ``ExtendWebSocketsToKubelet`` in
``status.declaredFeatures``, so kube-apiserver proxies kubectl's WebSocket to the kubelet as it
is instead of translating it to SPDY. Not served: ``/attach``, ``/portForward``, ``/stats``
and ``/metrics``.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from elastrain_sandbox import containerlogs, execsession
from elastrain_sandbox.binds import require_private
from elastrain_sandbox.execsession import ExecBackend

PodLookup = Callable[[str, str], dict[str, Any] | None]


class KubeletApi:
    """``start(host, port)`` serves over TLS with ``cert``/``key``; client certificates must
    chain to ``client_ca`` (the API server's kubelet client)."""

    def __init__(
        self,
        state_dir: Path,
        pod: PodLookup,
        *,
        cert: Path,
        key: Path,
        client_ca: Path | None,
        exec_backend: ExecBackend | None = None,
    ) -> None:
        self.state_dir = state_dir
        self._pod = pod
        self._exec = exec_backend
        self._cert, self._key, self._client_ca = cert, key, client_ca
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        require_private(host, "the node agent's kubelet API")
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
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
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=context, reuse_address=True)
        await site.start()
        self.port = port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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
