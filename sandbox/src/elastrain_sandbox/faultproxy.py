"""A fault-injecting HTTP proxy in front of any Kubernetes API server (the embedded one, the real
kube-apiserver, or a cluster's), for the reliability suites.

A client (the operator) talks plain HTTP to the proxy on loopback; the proxy forwards each
request to the upstream server with the client's own ``Authorization`` header, so RBAC sees the
client as it is. At the configured rates it answers in the upstream's place, or bends the
watch stream, the way a loaded or restarting API server does:

* ``5xx``: 500/503 before the request reaches the server, or (writes only) 504 after it was
  applied, as a timed-out proxy does: the client cannot know whether its write happened;
* ``429``: Too Many Requests with ``Retry-After: 1`` (API priority and fairness);
* ``409``: a Conflict on an update or patch (someone else's write won the race);
* ``drop``: a watch stream cut after a few events, without a closing chunk;
* ``410``: a watch answered with the ``ERROR`` event of an expired resourceVersion;
* ``delay``: a watch whose events each arrive up to ``max_delay`` seconds late (in order);
* ``replay``: a run of watch events sent again, in order, after one to three newer ones, as a
  client that reconnects from an old resourceVersion sees them: for a moment its view goes back
  in time (a stale view), and the run ends at the newest event again.

A test can also cut every watch at a moment of its choosing: :meth:`FaultProxy.hold_watches`
closes the open streams and keeps new ones waiting, :meth:`FaultProxy.release_watches` answers
the waiting ones with 410 Gone, so the client must re-list what changed meanwhile, deletions
included.

Faults are drawn from a seeded ``random.Random``; :attr:`FaultProxy.injected` counts them by
kind, and :attr:`FaultProxy.requests` counts everything that passed.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import ssl
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from elastrain_sandbox.binds import require_private

KINDS = ("5xx", "429", "409", "drop", "410", "delay", "replay")
# Headers a proxy must not pass along (hop-by-hop, or recomputed for the new body).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "host",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-authenticate",
    }
)
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class FaultRates:
    """The chance of each fault: per request for ``error`` (5xx, one in ten by default),
    ``throttle`` (429) and ``conflict`` (409, updates and patches only); per watch event for
    ``drop``, ``delay`` and ``replay``; ``gone`` (410) both when a watch starts and per event.

    Watch faults are drawn per event because a client keeps one watch open for minutes: a rate
    per watch request would hardly ever fire."""

    error: float = 0.10
    throttle: float = 0.03
    conflict: float = 0.10
    drop: float = 0.03
    gone: float = 0.02
    delay: float = 0.10
    replay: float = 0.05
    max_delay: float = 1.0

    @classmethod
    def none(cls) -> FaultRates:
        return cls(0, 0, 0, 0, 0, 0, 0)


@dataclass
class FaultProxy:
    """``await start()``; clients use :attr:`url`; ``await stop()``. ``rates`` may be changed
    while it runs (``FaultRates.none()`` lets a scenario settle)."""

    upstream: str
    ssl_context: ssl.SSLContext | None = None
    rates: FaultRates = field(default_factory=FaultRates)
    seed: int = 0
    host: str = "127.0.0.1"
    injected: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    url: str = ""

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # a reproducible schedule, not a secret
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._watches: dict[asyncio.BaseTransport, str] = {}  # open watch -> its path
        self._gate: asyncio.Event | None = None  # watches wait while it is clear
        self.waiting = 0  # watch requests waiting for release_watches()

    async def start(self, port: int = 0) -> str:
        require_private(self.host, "the fault proxy")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://{self.host}:{sock.getsockname()[1]}"
        return self.url

    async def hold_watches(self) -> int:
        """Cut every open watch stream and keep new watch requests waiting (call on the loop);
        returns how many streams were cut."""
        self._watch_gate().clear()
        cut = list(self._watches)
        for transport in cut:
            transport.close()
        self._watches.clear()
        return len(cut)

    async def release_watches(self) -> None:
        """Let watches through again; the ones that waited are answered with 410 Gone."""
        self._watch_gate().set()

    def _watch_gate(self) -> asyncio.Event:
        if self._gate is None:
            self._gate = asyncio.Event()
            self._gate.set()
        return self._gate

    async def stop(self) -> None:
        # Watches first: an open one would hold the runner's graceful shutdown for its timeout.
        for transport in list(self._watches):
            transport.close()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ requests
    def _draw(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch") in ("true", "1")
        self.requests["watch" if watch else request.method] += 1
        rates = self.rates
        if self._draw(rates.throttle):
            return self._fault("429", 429, "TooManyRequests", {"Retry-After": "1"})
        if not watch and self._draw(rates.error):
            if request.method in WRITES and self._rng.random() < 0.5:
                await self._forward(request)  # applied, but the client never hears so
                return self._fault("5xx", 504, "Timeout")
            if self._rng.random() < 0.5:
                return self._fault("5xx", 500, "InternalError")
            return self._fault("5xx", 503, "ServiceUnavailable")
        if request.method in ("PUT", "PATCH") and self._draw(rates.conflict):
            return self._fault("409", 409, "Conflict")
        if watch:
            return await self._watch(request)
        return await self._forward(request)

    def _fault(
        self, kind: str, code: int, reason: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        self.injected[kind] += 1
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"injected by the fault proxy: {reason}",
            "reason": reason,
            "code": code,
        }
        if code == 409:
            status["message"] = (
                "Operation cannot be fulfilled: the object has been modified; please apply "
                "your changes to the latest version and try again (injected by the fault proxy)"
            )
        return web.json_response(status, status=code, headers=headers)

    def _upstream_request(self, request: web.Request) -> dict[str, Any]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Accept-Encoding"] = "identity"
        return {
            "method": request.method,
            "url": self.upstream.rstrip("/") + request.rel_url.path_qs,
            "headers": headers,
            "ssl": self.ssl_context if self.ssl_context is not None else False,
        }

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        try:
            async with self._session.request(
                **self._upstream_request(request), data=body or None
            ) as resp:
                payload = await resp.read()
                headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
                return web.Response(body=payload, status=resp.status, headers=headers)
        except aiohttp.ClientError as exc:
            return web.json_response(
                {"kind": "Status", "status": "Failure", "code": 502, "message": str(exc)},
                status=502,
            )

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        """Stream the upstream watch, bending it event by event at the watch rates."""
        assert self._session is not None
        rates = self.rates
        gate = self._watch_gate()
        held = not gate.is_set()
        if held:
            self.waiting += 1
            try:
                await gate.wait()
            finally:
                self.waiting -= 1
        if held or self._draw(rates.gone):  # expired before the first event
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            await self._expire(resp)
            return resp
        # Registered before connecting upstream, so that a hold cuts it whatever its stage.
        if request.transport is not None:
            self._watches[request.transport] = request.rel_url.path
        try:
            return await self._stream(request)
        finally:
            if request.transport is not None:
                self._watches.pop(request.transport, None)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        async with self._session.request(**self._upstream_request(request)) as upstream:
            headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            resp = web.StreamResponse(status=upstream.status, headers=headers)
            await resp.prepare(request)
            run: list[bytes] = []  # events to send again, once ``newer`` more have passed
            newer = 0
            try:
                async for line in upstream.content:
                    rates = self.rates
                    if self._draw(rates.delay):
                        self.injected["delay"] += 1
                        await asyncio.sleep(self._rng.uniform(0, rates.max_delay))
                    await resp.write(line)
                    if run:
                        run.append(line)
                        if len(run) > newer:  # the reconnect: the run again, oldest first
                            self.injected["replay"] += 1
                            for old in run:
                                await resp.write(old)
                            run = []
                    elif line.strip() and self._draw(rates.replay):
                        run, newer = [line], self._rng.randint(1, 3)
                    if self._draw(rates.drop):
                        self.injected["drop"] += 1
                        if request.transport is not None:
                            request.transport.close()  # no closing chunk: a cut connection
                        return resp
                    if self._draw(rates.gone):
                        await self._expire(resp)
                        return resp
                await resp.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # the client or the server went away; the stream just ends
            return resp

    async def _expire(self, resp: web.StreamResponse) -> None:
        """The ``ERROR`` event of an expired resourceVersion, and the end of the stream."""
        self.injected["410"] += 1
        expired = {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "too old resource version (injected by the fault proxy)",
                "reason": "Expired",
                "code": 410,
            },
        }
        await resp.write(json.dumps(expired).encode() + b"\n")
        await resp.write_eof()
