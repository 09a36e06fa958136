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

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from elastrain_sandbox.agent.launch import log_path

FOLLOW_POLL = 0.1
PodLookup = Callable[[str, str], dict[str, Any] | None]


def _status(pod: dict[str, Any], container: str) -> dict[str, Any] | None:
    status = pod.get("status") or {}
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if cs.get("name") == container:
            return dict(cs)
    return None


def _finished(cs: dict[str, Any] | None, restart: int) -> bool:
    if cs is None or int(cs.get("restartCount", 0)) != restart:
        return True
    return "running" not in (cs.get("state") or {})


def _int(raw: str | None) -> int | None:
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"invalid integer {raw!r}") from exc


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(1 << 20)
    except FileNotFoundError:
        return b""


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
        q = request.query
        pod = self._pod(ns, name)
        if pod is None:
            raise web.HTTPNotFound(text=f'pod "{name}" in namespace "{ns}" not found')
        cs = _status(pod, container)
        previous = q.get("previous", "").lower() in ("1", "true")
        restart = int((cs or {}).get("restartCount", 0))
        if previous:
            if cs is None or restart == 0:
                raise web.HTTPBadRequest(
                    text=f'previous terminated container "{container}" in pod "{name}" not found'
                )
            restart -= 1
        path = log_path(self.state_dir, ns, name, container, restart)
        if not path.exists():
            waiting = ((cs or {}).get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason") or "ContainerCreating"
            raise web.HTTPBadRequest(
                text=f'container "{container}" in pod "{name}" is waiting to start: {reason}'
            )
        data = path.read_bytes()
        size = len(data)
        tail = _int(q.get("tailLines"))
        if tail is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail:]) if tail > 0 else b""
        limit = _int(q.get("limitBytes"))
        if limit is not None:
            data = data[:limit]
        follow = q.get("follow", "").lower() in ("1", "true") and not previous
        if not follow:
            return web.Response(body=data, content_type="text/plain")
        return await self._follow(request, data, (path, size), (ns, name, container), restart)

    async def _follow(
        self,
        request: web.Request,
        data: bytes,
        file: tuple[Path, int],
        ref: tuple[str, str, str],
        restart: int,
    ) -> web.StreamResponse:
        """Stream new bytes until the run has terminated or the pod is gone."""
        ns, name, container = ref
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(data)
        path, offset = file
        with contextlib.suppress(ConnectionResetError):
            while True:
                chunk = _read_from(path, offset)
                if chunk:
                    offset += len(chunk)
                    await resp.write(chunk)
                    continue
                current = self._pod(ns, name)
                if current is None or _finished(_status(current, container), restart):
                    rest = _read_from(path, offset)
                    if rest:
                        await resp.write(rest)
                    break
                await asyncio.sleep(FOLLOW_POLL)
            await resp.write_eof()
        return resp
