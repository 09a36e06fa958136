"""The kubelet API on the nodes' daemon port, for ``kubectl logs`` through a real kube-apiserver.

kube-apiserver proxies ``pods/log`` to ``https://<InternalIP>:<daemon port>/containerLogs/
<ns>/<pod>/<container>``, presenting its kubelet client certificate and checking ours against
the cluster CA (``--kubelet-certificate-authority``). One server serves every node of the agent:
they share one address (the agent's ``host_ip``), hence one port.

Served: ``/healthz`` and ``/containerLogs`` with ``follow``, ``tailLines``, ``limitBytes`` and
``previous``, read from the files the agent writes for each container run (the same files the
embedded server's ``pods/log`` reads). Not served: ``/exec``, ``/attach``, ``/portForward``
(kube-apiserver upgrades those to SPDY or WebSocket streams; ``kubectl exec`` on the real
control plane is a known gap), ``/stats`` and ``/metrics``.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from elastrain_sandbox import containerlogs

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
    ) -> None:
        self.state_dir = state_dir
        self._pod = pod
        self._cert, self._key, self._client_ca = cert, key, client_ca
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self._logs)
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
