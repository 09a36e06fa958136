"""How workers talk to parameter servers: one HTTP server per ps, plain requests from workers.

Why not torch RPC (which this replaced): its dynamic group keeps a crashed member for good, so
every later join fails notifying it, and a crashed worker could never be replaced while the
job ran. Here a ps is a server and a worker is a client: nothing is shared but each ps's
address, so a worker may crash, be replaced, join late or leave early, and the others never
notice. The ps learns which workers are alive from their requests (each names its worker
index), as a server would.

The wire: ``POST /v1/<method>`` with the arguments, the answer in the body, both
``torch.save``-d (tensors travel without copies through pickle's buffers) and read back with
``torch.load(weights_only=True)``, which admits tensors, numbers, strings and containers only:
a peer cannot make this process run code. HTTP/1.1 keep-alive gives each worker one connection
per ps; threads serve them concurrently, the shard's lock orders what they change.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import torch

log = logging.getLogger(__name__)

PREFIX = "/v1/"
CONTENT_TYPE = "application/x-elastrain-torch"
REQUEST_TIMEOUT_S = 120.0
# A ps that is not up yet (every pod starts at its own pace) is retried this often.
CONNECT_RETRY_S = 0.5

Handler = Callable[..., Any]


class TransportError(RuntimeError):
    """A ps could not be reached, or went away mid-request: it may come back (``worker``)."""


class RemoteError(RuntimeError):
    """A ps answered, with an error: a bug or a mismatch that retrying cannot mend."""


# Seconds a ps keeps an idle connection open: workers call every step, so only a stuck or
# partitioned worker idles this long, and a stopping ps never waits longer on one.
IDLE_TIMEOUT_S = 30.0


def encode(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def decode(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=True)


class ShardServer:
    """Serves ``handlers`` (method name -> function of the decoded arguments) on ``port``."""

    def __init__(self, port: int, handlers: dict[str, Handler], host: str = "") -> None:
        self.handlers = handlers

        class RequestHandler(_RequestHandler):
            routes = handlers

        self._server = _Server((host, port), RequestHandler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"ps server :{self.port}", daemon=True
        )

    def start(self) -> ShardServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: requests from now on get 503 and their connections close, and this
        returns once the answers being written are out (a worker's last ``finish`` reply
        must reach it before this process exits), so nothing changes the shard after."""
        self._server.stopping.set()
        self._server.shutdown()
        self._server.end_reads()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads: no reply is cut off
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[_RequestHandler]) -> None:
        super().__init__(address, handler)
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def end_reads(self) -> None:
        """Half-close every open connection for reading: a handler waiting for the next
        request on an idle keep-alive connection sees its end now, not ``IDLE_TIMEOUT_S``
        later; one writing its answer finishes it."""
        with self.connections_lock:
            for conn in self.connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RD)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S  # an idle keep-alive connection ends, and its thread with it
    routes: ClassVar[dict[str, Handler]] = {}

    def setup(self) -> None:
        super().setup()
        server = self.server
        if isinstance(server, _Server):
            with server.connections_lock:
                server.connections.add(self.connection)

    def finish(self) -> None:
        server = self.server
        if isinstance(server, _Server):
            with server.connections_lock:
                server.connections.discard(self.connection)
        super().finish()

    def do_POST(self) -> None:
        name = self.path.removeprefix(PREFIX)
        handler = self.routes.get(name) if self.path.startswith(PREFIX) else None
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if isinstance(self.server, _Server) and self.server.stopping.is_set():
            self.close_connection = True
            self._answer(503, b"the parameter server is stopping", "text/plain")
            return
        if handler is None:
            self._answer(404, f"no method {self.path}".encode(), "text/plain")
            return
        try:
            args = decode(body)
            result = handler(*args)
        except Exception as exc:
            log.exception("ps method %s failed", name)
            self._answer(500, f"{type(exc).__name__}: {exc}".encode(), "text/plain")
            return
        self._answer(200, encode(result), CONTENT_TYPE)

    def _answer(self, code: int, data: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("ps http: %s", format % args)


class ShardClient:
    """One worker's connection to one ps. Calls are serialised on it (one in flight)."""

    def __init__(self, host: str, port: int, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def wait_until_up(self, deadline_s: float) -> None:
        """Until the ps accepts connections: pods start in any order."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=5):
                    return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise TransportError(
                        f"ps at {self.host}:{self.port} not reachable after {deadline_s:.0f}s: "
                        f"{exc}"
                    ) from exc
            time.sleep(CONNECT_RETRY_S)

    def call(self, method: str, *args: Any) -> Any:
        """Call ``method`` on the ps: TransportError if it cannot be reached or goes away,
        RemoteError if it answers with an error.

        A request is sent again only where the ps cannot have acted on it: the send failed,
        or a reused keep-alive connection was found closed without an answer (the ps ends
        idle connections, ``IDLE_TIMEOUT_S``). A fresh connection that breaks mid-request is
        the caller's problem: a push may have been applied."""
        body = encode(args)
        with self._lock:
            for attempt in (1, 2):
                reused = self._conn is not None
                conn = self._connection()
                try:
                    conn.request(
                        "POST", PREFIX + method, body=body, headers={"Content-Type": CONTENT_TYPE}
                    )
                except (OSError, http.client.HTTPException) as exc:
                    self._close()  # nothing the ps could act on reached it
                    if attempt == 2:
                        raise TransportError(f"ps at {self.host}:{self.port}: {exc}") from exc
                    continue
                try:
                    response = conn.getresponse()
                    data = response.read()
                except (http.client.RemoteDisconnected, ConnectionResetError) as exc:
                    self._close()
                    if reused and attempt == 1:
                        continue  # the ps had closed this idle connection: send it again
                    raise TransportError(
                        f"ps at {self.host}:{self.port} did not answer {method}: {exc}"
                    ) from exc
                except (OSError, http.client.HTTPException) as exc:
                    self._close()
                    raise TransportError(
                        f"ps at {self.host}:{self.port} did not answer {method}: {exc}"
                    ) from exc
                text = data.decode(errors="replace") if response.status != 200 else ""
                if response.status == 503:
                    self._close()
                    raise TransportError(f"ps at {self.host}:{self.port}: {text}")
                if response.status != 200:
                    raise RemoteError(
                        f"ps at {self.host}:{self.port} refused {method} ({response.status}): "
                        f"{text}"
                    )
                return decode(data)
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()
