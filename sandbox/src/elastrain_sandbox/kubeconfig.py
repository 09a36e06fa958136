"""Writing the sandbox's kubeconfig (accepted by kubectl, the kubernetes client and kopf).

Plain http on loopback with a static token: the sandbox authenticates nothing, but a token
makes kopf's ``login_via_client`` and client libraries take their ordinary authenticated path.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

CONTEXT = "elastrain-sandbox"
# Any bearer token is accepted; clients send one so that they take their authenticated path.
TOKEN = "elastrain-sandbox"  # noqa: S105 (not a secret: the sandbox authenticates nothing)


def kubeconfig(url: str, namespace: str = "default") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": {"token": TOKEN}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: Path, url: str) -> None:
    """Write atomically (readers never see half a file), mode 0600 as kubectl expects."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(kubeconfig(url), sort_keys=False))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def server_url(path: Path) -> str:
    """The server URL of the current context in a kubeconfig (for the node admin CLI)."""
    data = yaml.safe_load(path.read_text())
    ctx_name = data.get("current-context")
    ctx = next(c["context"] for c in data["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in data["clusters"] if c["name"] == ctx["cluster"])
    return str(cluster["server"])
