"""A small Kubernetes API client for tests, built from any kubeconfig, and the sandbox's node admin.

Tests read and write the cluster through its API only, whichever cluster it is: the embedded
sandbox (plain http, a static token), the real control plane (client certificate and CA) or
any cluster a kubeconfig names (token, token file, client certificate, basic auth or an
``exec`` credential plugin such as the cloud providers' ones). One keep-alive connection per
client, so a poll is one GET, not a TLS handshake or a kubectl process.

* ``Api(source)``: ``source`` is a kubeconfig path or anything with ``.kubeconfig_path``
  (``Sandbox``, ``RealControlPlane``...). ``call(method, path, body, query=...) -> Response``;
  ``get``/``items`` for reads where 404 means "not there (yet)".
* ``SandboxNodeAdmin(api)``: the embedded sandbox's ``/sandbox/nodes`` endpoints as a
  ``elastrain_sandbox.admin.NodeAdmin``.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Unpack

import yaml
from elastrain_sandbox.admin import NodeOptions

Obj = dict[str, Any]
# A stale keep-alive connection fails with one of these on its next request: reconnect once.
# What a keep-alive connection the server has closed while it idled raises on reuse (over TLS,
# an EOF without close_notify: kube-apiserver drops idle connections after a few minutes).
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)


class HasKubeconfig(Protocol):
    """Anything that knows its kubeconfig: ``Sandbox``, ``RealControlPlane``, a real cluster."""

    @property
    def kubeconfig_path(self) -> Path: ...


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used (no current context, an unsupported auth method...)."""


class ApiError(AssertionError):
    """An API call answered with an unexpected status (an AssertionError: tests fail on it)."""


# client-go's default for 429 answers (rest.Request's maxRetries).
MAX_429_RETRIES = 10


@dataclass
class Response:
    status: int
    body: Obj
    text: str = ""
    retry_after: float | None = None  # the Retry-After header, in seconds

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Credentials:
    """What a kubeconfig's current context says about reaching and authenticating to a server."""

    server: str
    ca_file: Path | None = None
    ca_data: str | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    token: str | None = None
    token_file: Path | None = None
    username: str | None = None
    password: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    exec_spec: Obj | None = None
    namespace: str = "default"


def _named(entries: list[Obj] | None, name: str, what: str) -> Obj:
    for entry in entries or []:
        if entry.get("name") == name:
            return dict(entry.get(what) or {})
    raise KubeconfigError(f"the kubeconfig has no {what} named {name!r}")


def load_kubeconfig(path: Path, context: str | None = None) -> Credentials:
    """Parse one kubeconfig file (``context`` or its current context); relative file names are
    relative to the kubeconfig's folder, as kubectl reads them."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    name = context or config.get("current-context")
    if not name:
        raise KubeconfigError(f"{path}: no current-context")
    ctx = _named(config.get("contexts"), name, "context")
    cluster = _named(config.get("clusters"), str(ctx.get("cluster")), "cluster")
    user = _named(config.get("users"), str(ctx["user"]), "user") if ctx.get("user") else {}
    base = Path(path).resolve().parent

    def file(value: Any) -> Path | None:
        return None if not value else base / Path(str(value)).expanduser()

    def data(value: Any) -> bytes | None:
        return None if not value else base64.b64decode(value)

    if "auth-provider" in user:
        raise KubeconfigError(
            f"{path}: auth-provider {user['auth-provider'].get('name')!r} is not supported "
            "(use a token, a client certificate or an exec plugin)"
        )
    ca_data = data(cluster.get("certificate-authority-data"))
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=file(cluster.get("certificate-authority")),
        ca_data=ca_data.decode() if ca_data else None,
        cert_file=file(user.get("client-certificate")),
        key_file=file(user.get("client-key")),
        cert_data=data(user.get("client-certificate-data")),
        key_data=data(user.get("client-key-data")),
        token=user.get("token"),
        token_file=file(user.get("tokenFile")),
        username=user.get("username"),
        password=user.get("password"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"),
        exec_spec=user.get("exec"),
        namespace=str(ctx.get("namespace") or "default"),
    )


def _load_cert_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """``load_cert_chain`` reads files only: write the PEMs to a private folder, then remove it."""
    folder = Path(tempfile.mkdtemp(prefix="cluster-api-"))  # mode 0700
    try:
        (folder / "cert.pem").write_bytes(cert)
        (folder / "key.pem").write_bytes(key)
        context.load_cert_chain(str(folder / "cert.pem"), str(folder / "key.pem"))
    finally:
        for name in ("cert.pem", "key.pem"):
            (folder / name).unlink(missing_ok=True)
        folder.rmdir()


@dataclass
class _ExecCredential:
    token: str | None
    cert: bytes | None
    key: bytes | None
    expires: datetime.datetime | None

    def fresh(self) -> bool:
        if self.expires is None:
            return True
        margin = datetime.timedelta(seconds=30)
        return datetime.datetime.now(datetime.UTC) + margin < self.expires


def _run_exec_plugin(spec: Obj) -> _ExecCredential:
    """Run a ``users[].user.exec`` credential plugin (client.authentication.k8s.io)."""
    api_version = spec.get("apiVersion", "client.authentication.k8s.io/v1")
    info = {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    env = {**os.environ, "KUBERNETES_EXEC_INFO": json.dumps(info)}
    env.update({e["name"]: e["value"] for e in spec.get("env") or []})
    argv = [str(spec["command"]), *map(str, spec.get("args") or [])]
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise KubeconfigError(f"exec credential plugin {argv[0]} failed: {proc.stderr.strip()}")
    status = json.loads(proc.stdout).get("status") or {}
    expires = status.get("expirationTimestamp")
    return _ExecCredential(
        token=status.get("token"),
        cert=status["clientCertificateData"].encode()
        if status.get("clientCertificateData")
        else None,
        key=status["clientKeyData"].encode() if status.get("clientKeyData") else None,
        expires=datetime.datetime.fromisoformat(expires.replace("Z", "+00:00"))
        if expires
        else None,
    )


class _TlsConnection(http.client.HTTPSConnection):
    """HTTPS with the kubeconfig's ``tls-server-name`` checked instead of the URL's host."""

    def __init__(self, host: str, port: int | None, server_name: str, **kw: Any) -> None:
        super().__init__(host, port, **kw)
        self.server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            self.sock, server_hostname=self.server_name
        )


class Api:
    """Plain HTTP(S) calls with the kubeconfig's credentials: what kubectl sends, minus kubectl.

    One keep-alive connection, guarded by a lock (tests poll from one thread, but fixtures and
    helpers may share a client). A stale connection is reopened once and the request resent.
    """

    def __init__(self, source: Path | str | HasKubeconfig, *, timeout: float = 60) -> None:
        path = Path(source) if isinstance(source, str | Path) else source.kubeconfig_path
        self.kubeconfig_path = path
        self.credentials = load_kubeconfig(path)
        self.base = self.credentials.server
        url = urllib.parse.urlsplit(self.base)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise KubeconfigError(f"{path}: unsupported server URL {self.base!r}")
        self._https = url.scheme == "https"
        self._host, self._port, self._prefix = url.hostname, url.port, url.path.rstrip("/")
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._exec: _ExecCredential | None = None
        self._context: ssl.SSLContext | None = None

    # ------------------------------------------------------------------ transport
    def _credential(self) -> _ExecCredential | None:
        spec = self.credentials.exec_spec
        if spec is None:
            return None
        if self._exec is None or not self._exec.fresh():
            self._exec = _run_exec_plugin(spec)
            self._context = None  # a new client certificate needs a new TLS context
            self._close()
        return self._exec

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is not None:
            return self._context
        creds = self.credentials
        context = ssl.create_default_context()
        if creds.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif creds.ca_data:
            context.load_verify_locations(cadata=creds.ca_data)
        elif creds.ca_file:
            context.load_verify_locations(cafile=str(creds.ca_file))
        exec_cred = self._exec
        if exec_cred is not None and exec_cred.cert and exec_cred.key:
            _load_cert_chain(context, exec_cred.cert, exec_cred.key)
        elif creds.cert_data and creds.key_data:
            _load_cert_chain(context, creds.cert_data, creds.key_data)
        elif creds.cert_file and creds.key_file:
            context.load_cert_chain(str(creds.cert_file), str(creds.key_file))
        self._context = context
        return context

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """The open connection (reused: True) or a new one."""
        if self._conn is not None:
            return self._conn, True
        conn: http.client.HTTPConnection
        if not self._https:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        elif self.credentials.tls_server_name:
            conn = _TlsConnection(
                self._host,
                self._port,
                self.credentials.tls_server_name,
                timeout=self.timeout,
                context=self._ssl_context(),
            )
        else:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=self._ssl_context()
            )
        self._conn = conn
        return conn, False

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "elastrain-tests"}
        if content_type:
            headers["Content-Type"] = content_type
        creds, exec_cred = self.credentials, self._credential()
        token = exec_cred.token if exec_cred is not None else None
        token = token or creds.token
        if not token and creds.token_file:
            token = creds.token_file.read_text().strip()  # re-read: projected tokens rotate
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif creds.username is not None:
            pair = f"{creds.username}:{creds.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return headers

    def _send(self, method: str, target: str, data: bytes | None, ctype: str | None) -> Response:
        for attempt in (1, 2):
            conn, reused = self._connection()
            try:
                conn.request(method, target, body=data, headers=self._headers(ctype))
                resp = conn.getresponse()
                raw = resp.read()
            except _STALE:
                self._close()
                if reused and attempt == 1:
                    continue
                raise
            except BaseException:
                self._close()
                raise
            if resp.will_close:
                self._close()
            if resp.status == 401 and self._exec is not None and attempt == 1:
                self._exec = None  # an expired plugin credential: ask the plugin again
                continue
            text = raw.decode(errors="replace")
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {}
            retry = resp.getheader("Retry-After")
            return Response(
                resp.status,
                body if isinstance(body, dict) else {"items": body},
                text,
                float(retry) if retry and retry.isdigit() else None,
            )
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ API
    def call(
        self,
        method: str,
        path: str,
        body: Obj | None = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Response:
        """One request; any status comes back as a ``Response`` (connection errors raise).

        429 is retried after its Retry-After, a bounded number of times, as client-go does: a
        real API server answers it while a new resource's storage initialises (a CRD just
        installed) and under priority-and-fairness limits, and it means "later", not "no".
        """
        target = self._prefix + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        ctype = content_type if data is not None else None
        for _ in range(MAX_429_RETRIES):
            with self._lock:
                response = self._send(method, target, data, ctype)
            if response.status != 429:
                return response
            time.sleep(min(response.retry_after or 1.0, 10.0))  # the server's back-off
        return response

    def get(self, path: str, **query: str) -> Obj | None:
        """The object at ``path``, or None when it does not exist (404)."""
        response = self.call("GET", path, query=query or None)
        if response.status == 404:
            return None
        self.check(response, "GET", path)
        return response.body

    def items(self, path: str, **query: str) -> list[Obj]:
        """The items of a list; none when the resource is not served (yet): 404."""
        found = self.get(path, **query)
        return list((found or {}).get("items") or [])

    @staticmethod
    def check(response: Response, method: str, path: str) -> Response:
        if not response.ok:
            raise ApiError(
                f"{method} {path}: {response.status} {response.message or response.text[:500]}"
            )
        return response


def resource_path(api_version: str, plural: str, namespace: str | None = None) -> str:
    """``/api/v1/namespaces/ns/pods`` or ``/apis/group/version/plural`` for a cluster scope."""
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{root}/namespaces/{namespace}/{plural}" if namespace else f"{root}/{plural}"


class SandboxNodeAdmin:
    """The embedded sandbox's node operations over HTTP (``/sandbox/nodes``, see
    ``elastrain_sandbox.admin``): a ``NodeAdmin`` that needs only the sandbox's kubeconfig."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def _call(self, method: str, path: str, body: Obj | None = None) -> Obj:
        return Api.check(self.api.call(method, path, body), method, path).body

    def add_node(self, name: str, **options: Unpack[NodeOptions]) -> Obj:
        body = {"name": name, **{k: v for k, v in options.items() if v is not None}}
        return self._call("POST", "/sandbox/nodes", body)

    def remove_node(self, name: str) -> None:
        self._call("DELETE", f"/sandbox/nodes/{name}")

    def set_node_ready(self, name: str, ready: bool | None) -> Obj:
        action = {True: "ready", False: "not-ready", None: "unreachable"}[ready]
        return self._call("POST", f"/sandbox/nodes/{name}/{action}", {})
