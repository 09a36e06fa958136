"""The operator behind the fault proxy (``elastrain_sandbox.faultproxy``), on any cluster.

:func:`proxied` starts the proxy in front of the cluster's API server, acting for the
operator's user (its client certificate or token), and yields it with a kubeconfig that points
the operator at it. The reliability suite turns up its fault rates; a test can also cut every
watch at a moment of its choosing (:meth:`Proxy.hold_watches`).
"""

from __future__ import annotations

import base64
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from elastrain_sandbox.faultproxy import FaultProxy, FaultRates
from elastrain_sandbox.loopthread import LoopThread


@dataclass
class Proxy:
    """A running fault proxy, and the kubeconfig that sends the operator through it."""

    proxy: FaultProxy
    loop: LoopThread
    kubeconfig: Path

    def hold_watches(self) -> int:
        """Cut every watch; returns how many were open."""
        cut: int = self.loop.call(self.proxy.hold_watches(), timeout=10)
        return cut

    def waiting(self) -> int:
        """Watch requests waiting for :meth:`release_watches` (read from the test's thread)."""
        return self.proxy.waiting

    def release_watches(self) -> None:
        self.loop.call(self.proxy.release_watches(), timeout=10)


@contextmanager
def proxied(
    operator_kubeconfig: Path, out: Path, rates: FaultRates | None = None, seed: int = 0
) -> Iterator[Proxy]:
    upstream, tls, kubeconfig = through_proxy(operator_kubeconfig, out)
    proxy = FaultProxy(upstream, tls, rates=rates or FaultRates.none(), seed=seed)

    async def serve() -> None:
        await proxy.start()

    loop = LoopThread("fault-proxy", serve, proxy.stop)
    loop.start(timeout=30)
    try:
        kubeconfig.write_text(kubeconfig.read_text().replace("PROXY", proxy.url))
        yield Proxy(proxy, loop, kubeconfig)
    finally:
        loop.stop(timeout=30)


def _data(entry: dict[str, Any], key: str) -> bytes | None:
    """A kubeconfig's ``<key>-data`` (base64) or ``<key>`` (a file path), as bytes."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return Path(entry[key]).read_bytes()
    return None


def through_proxy(kubeconfig: Path, out: Path) -> tuple[str, ssl.SSLContext | None, Path]:
    """The upstream URL and TLS context the proxy needs to act for ``kubeconfig``'s user, and a
    kubeconfig at ``out`` that sends that user's token to the proxy instead (its ``server`` is
    filled in once the proxy listens)."""
    config = yaml.safe_load(kubeconfig.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    user = next(u for u in config["users"] if u["name"] == context["context"]["user"])["user"]
    server = cluster["cluster"]["server"]
    tls: ssl.SSLContext | None = None
    if server.startswith("https://"):
        tls = ssl.create_default_context()
        ca = _data(cluster["cluster"], "certificate-authority")
        if ca is not None:
            tls.load_verify_locations(cadata=ca.decode())
        cert, key = _data(user, "client-certificate"), _data(user, "client-key")
        if cert is not None and key is not None:  # the proxy presents the user's certificate
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "c").write_bytes(cert)
                (Path(tmp) / "k").write_bytes(key)
                tls.load_cert_chain(str(Path(tmp) / "c"), str(Path(tmp) / "k"))
    token_user = {"token": user["token"]} if user.get("token") else {}
    out.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "proxy", "cluster": {"server": "PROXY"}}],
                "users": [{"name": "operator", "user": token_user}],
                "contexts": [{"name": "p", "context": {"cluster": "proxy", "user": "operator"}}],
                "current-context": "p",
            }
        )
    )
    out.chmod(0o600)
    return server, tls, out
