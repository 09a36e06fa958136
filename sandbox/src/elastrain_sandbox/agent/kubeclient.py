"""A small asyncio Kubernetes client for the node agent (aiohttp), built from a kubeconfig.

Only what a kubelet does: JSON requests (get, list, create, patch, delete) and watch streams.
Authentication is the kubeconfig's: a client certificate with the cluster's CA (the real
control plane), or a bearer token over plain HTTP (the embedded server).
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from elastrain_sandbox.agent.source import Obj, SourceError

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


@dataclass(frozen=True)
class KubeConfig:
    """The parts of a kubeconfig's current context that a client needs."""

    server: str
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    token: str | None = None

    @classmethod
    def load(cls, path: Path) -> KubeConfig:
        data = yaml.safe_load(Path(path).read_text())
        ctx_name = data.get("current-context")
        ctx = next(c["context"] for c in data["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in data["clusters"] if c["name"] == ctx["cluster"])
        users = data.get("users") or []
        user: dict[str, Any] = next((u["user"] for u in users if u["name"] == ctx.get("user")), {})

        def file(value: str | None, inline: str | None, suffix: str) -> Path | None:
            if value:
                return Path(value)
            if inline:  # *-data: write it out once, ssl wants files
                with tempfile.NamedTemporaryFile("wb", suffix=suffix, delete=False) as f:
                    f.write(base64.b64decode(inline))
                    return Path(f.name)
            return None

        return cls(
            server=str(cluster["server"]).rstrip("/"),
            ca=file(
                cluster.get("certificate-authority"),
                cluster.get("certificate-authority-data"),
                ".crt",
            ),
            cert=file(user.get("client-certificate"), user.get("client-certificate-data"), ".crt"),
            key=file(user.get("client-key"), user.get("client-key-data"), ".key"),
            token=user.get("token"),
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.server.startswith("https:"):
            return None
        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        if self.cert is not None and self.key is not None:
            context.load_cert_chain(str(self.cert), str(self.key))
        return context


class KubeClient:
    """JSON over HTTP(S) to one API server; every failure is a ``SourceError``."""

    def __init__(self, config: KubeConfig, user_agent: str = "elastrain-sandbox-agent") -> None:
        self.config = config
        self._ssl = config.ssl_context()
        self._headers = {"Accept": JSON, "User-Agent": user_agent}
        if config.token:
            self._headers["Authorization"] = f"Bearer {config.token}"
        self._session: aiohttp.ClientSession | None = None
        self._watches: set[aiohttp.ClientResponse] = set()
        self._shut = False

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._shut:
            raise SourceError(0, "the client is shut down")
        if self._session is None:
            # No connection cap: every watch holds a connection of its own (a kubelet would
            # multiplex them over HTTP/2), and aiohttp's default cap of 100 let watches starve
            # heartbeats and status writes.
            connector = aiohttp.TCPConnector(
                ssl=self._ssl if self._ssl is not None else False, limit=0
            )
            self._session = aiohttp.ClientSession(
                base_url=None, connector=connector, headers=self._headers
            )
        return self._session

    async def close(self) -> None:
        """Drop every connection; open watches end with an error (informers then relist).
        The next request opens a fresh session."""
        for resp in list(self._watches):
            resp.close()
        self._watches.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def shutdown(self) -> None:
        """Close for good: later calls fail with ``SourceError`` (code 0)."""
        self._shut = True
        await self.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = JSON,
        timeout: float = 30.0,
    ) -> Obj:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        try:
            async with self.session.request(
                method,
                self.config.server + path,
                data=data,
                params=dict(params or {}),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                raw = await resp.read()
                try:
                    out = json.loads(raw) if raw else {}
                except ValueError:
                    out = {"message": raw.decode(errors="replace")}
                if resp.status >= 400:
                    message = out.get("message") if isinstance(out, dict) else None
                    raise SourceError(resp.status, str(message or raw[:200]))
                return out if isinstance(out, dict) else {}
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SourceError(0, f"{method} {path}: {str(exc) or type(exc).__name__}") from exc

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Obj:
        return await self.request("GET", path, params=params)

    async def watch(
        self, path: str, params: Mapping[str, str], timeout: float
    ) -> AsyncIterator[Obj]:
        """The events of one watch request (``watch=1``), until the server ends it."""
        query = {**params, "watch": "1", "timeoutSeconds": str(int(timeout))}
        try:
            async with self.session.get(
                self.config.server + path,
                params=query,
                # A silent connection (a dead server) is dropped, then relisted: the server
                # ends every watch after ``timeout`` anyway.
                timeout=aiohttp.ClientTimeout(
                    total=timeout + 60, sock_connect=10, sock_read=timeout + 30
                ),
            ) as resp:
                if resp.status >= 400:
                    raw = await resp.read()
                    raise SourceError(resp.status, raw[:200].decode(errors="replace"))
                self._watches.add(resp)
                try:
                    while True:
                        line = await resp.content.readline()
                        if not line:
                            if resp.closed and not resp.content.is_eof():
                                raise SourceError(0, f"watch {path}: connection dropped")
                            return
                        if line.strip():
                            yield json.loads(line)
                finally:
                    self._watches.discard(resp)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise SourceError(0, f"watch {path}: {str(exc) or type(exc).__name__}") from exc
