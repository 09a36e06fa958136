"""How pods reach the API server, and the service-account token they reach it with.

Only for an agent serving a real kube-apiserver (``NodeAgent(api_access=...)``, set by
``RealCluster``); the embedded control plane leaves pods as they were (no service env, an empty
token file).

* **The endpoint.** kube-apiserver listens on 127.0.0.1 only, which a pod in its own network
  namespace cannot reach. The agent runs :class:`ApiForwarder`, a plain TCP relay (TLS stays end
  to end) listening on the bridge address (``NodeAgent.host_ip``), on port 443 where it can
  (kopf's in-cluster login hard-codes ``https://kubernetes.default.svc``, port 443), else on a
  free port. Pods get ``KUBERNETES_SERVICE_HOST=kubernetes.default.svc`` (a name in the API
  server certificate) and the ``KUBERNETES_SERVICE_PORT``/``KUBERNETES_PORT*`` family as the
  kubelet injects them for the ``kubernetes`` Service, and their ``/etc/hosts`` maps the
  Service's names to the bridge address. Only peers on the bridge's subnet (pods, and the host
  itself) are relayed. Without network namespaces (host network) there is no relay: the env
  names 127.0.0.1 and the API server's own port.
* **The token.** For a ``serviceAccountToken`` source of a projected volume (admission's
  ``kube-api-access-*``) the agent asks the TokenRequest API for a token bound to the pod, as
  the kubelet does, writes it, and requests a fresh one once 80 % of its lifetime (or 24 h) has
  passed, replacing the file atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from elastrain_sandbox.binds import require_private

log = logging.getLogger(__name__)

SERVICE_HOST = "kubernetes.default.svc"
SERVICE_PORT = 443
# The ``kubernetes`` Service's names as kube-dns serves them; the bare name only in ``default``.
SERVICE_NAMES = (
    "kubernetes.default.svc.cluster.local",
    "kubernetes.default.svc",
    "kubernetes.default",
)
REFRESH_FRACTION = 0.8  # the kubelet's token manager: refresh after 80 % of the TTL...
MAX_TOKEN_AGE = 24 * 3600.0  # ...or after 24 h, whichever comes first
CHUNK = 65536


@dataclass(frozen=True)
class IssuedToken:
    """A token from the TokenRequest API and when to ask for the next one."""

    token: str
    issued_at: float  # epoch seconds
    expires_at: float  # epoch seconds (``status.expirationTimestamp``)

    @property
    def refresh_at(self) -> float:
        """When the kubelet would replace it: 80 % of its lifetime, at most 24 h."""
        ttl = max(self.expires_at - self.issued_at, 0.0)
        return self.issued_at + min(ttl * REFRESH_FRACTION, MAX_TOKEN_AGE)

    @classmethod
    def from_status(cls, token: str, expiration: str, now: float | None = None) -> IssuedToken:
        """From a TokenRequest's ``status`` (RFC 3339 ``expirationTimestamp``)."""
        now = time.time() if now is None else now
        expires = datetime.fromisoformat(expiration.replace("Z", "+00:00")).timestamp()
        return cls(token, now, expires)


class TokenIssuer(Protocol):
    """Mints service-account tokens bound to a pod (``HttpSource.request_token``)."""

    async def request_token(
        self,
        namespace: str,
        service_account: str,
        *,
        pod_name: str,
        pod_uid: str,
        audiences: list[str],
        expiration_seconds: int,
    ) -> IssuedToken: ...


@dataclass(frozen=True)
class ApiAccess:
    """What the agent needs to give pods the API: the server's loopback address and port
    (``upstream``) and who mints tokens."""

    upstream: tuple[str, int]
    tokens: TokenIssuer


@dataclass(frozen=True)
class ServiceEndpoint:
    """Where pods find the API: ``host``:``port``, and the address ``host`` maps to in pods'
    ``/etc/hosts`` (None: ``host`` is an address itself)."""

    host: str
    port: int
    hosts_ip: str | None = None

    def env(self) -> dict[str, str]:
        """The ``kubernetes`` Service's variables, as the kubelet sets them in every pod."""
        port = str(self.port)
        url = f"tcp://{self.host}:{port}"
        prefix = f"KUBERNETES_PORT_{port}_TCP"
        return {
            "KUBERNETES_SERVICE_HOST": self.host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": url,
            prefix: url,
            f"{prefix}_PROTO": "tcp",
            f"{prefix}_PORT": port,
            f"{prefix}_ADDR": self.host,
        }

    def host_names(self, namespace: str) -> tuple[str, ...]:
        """The names that resolve to ``hosts_ip`` from a pod of ``namespace``."""
        if self.hosts_ip is None:
            return ()
        return (*SERVICE_NAMES, "kubernetes") if namespace == "default" else SERVICE_NAMES


class ApiForwarder:
    """A TCP relay from ``listen`` to ``upstream``, for peers within ``allowed`` only."""

    def __init__(
        self,
        listen_host: str,
        upstream: tuple[str, int],
        allowed: ipaddress.IPv4Network | ipaddress.IPv6Network,
    ) -> None:
        self.listen_host = listen_host
        self.upstream = upstream
        self.allowed = allowed
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self, ports: tuple[int, ...] = (SERVICE_PORT, 0)) -> int:
        """Listen on the first of ``ports`` that is free (0: any); the port taken."""
        require_private(self.listen_host, "the node agent's API relay")
        error: OSError | None = None
        for port in ports:
            try:
                self._server = await asyncio.start_server(self._relay, self.listen_host, port)
            except OSError as exc:
                error = exc
                log.warning("API relay: %s:%d is taken (%s)", self.listen_host, port, exc)
                continue
            self.port = int(self._server.sockets[0].getsockname()[1])
            if port != ports[0]:
                log.warning(
                    "API relay on %s:%d, not %d: in-cluster clients that assume port %d "
                    "(kopf's service-account login) will not connect",
                    self.listen_host,
                    self.port,
                    ports[0],
                    ports[0],
                )
            return self.port
        assert error is not None
        raise error

    async def stop(self) -> None:
        """Stop listening and cut every relayed connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        for task in list(self._conns):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            peer = writer.get_extra_info("peername")
            if not peer or ipaddress.ip_address(peer[0]) not in self.allowed:
                log.warning("API relay: refused a connection from %s", peer)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError as exc:
                log.warning("API relay: upstream %s:%d: %s", *self.upstream, exc)
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except asyncio.CancelledError:
            pass  # stop() cuts the connection; asyncio's server would log a cancelled handler
        finally:
            writer.close()
            self._conns.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close (the other direction may still be talking)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


def write_token(directory: Path, rel: str, token: str) -> None:
    """Replace ``directory/rel`` atomically (a reader never sees a half-written token)."""
    target = directory / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(token)
    os.replace(tmp, target)
