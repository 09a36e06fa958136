"""``pods/exec`` over the Kubernetes WebSocket streaming protocol (see ``execsession``).

kubectl 1.37 opens exec as a WebSocket (GET with ``Upgrade: websocket``) and falls back to
SPDY only when that upgrade fails, so the sandbox speaks the WebSocket protocol alone. Errors
that happen before the upgrade (no such pod, completed pod, container name missing or unknown,
container not running) are plain ``Status`` responses, which kubectl prints as it would a
cluster's.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from elastrain_sandbox import execsession
from elastrain_sandbox.apiserver import errors
from elastrain_sandbox.apiserver.logs import pick_container
from elastrain_sandbox.apiserver.store import Store
from elastrain_sandbox.execsession import ExecBackend

__all__ = ["ExecBackend", "serve_exec"]


def _flag(q: Any, name: str, default: bool = False) -> bool:
    raw = q.get(name)
    if raw is None:
        return default
    return str(raw).lower() in ("1", "true")


async def serve_exec(
    request: web.Request,
    store: Store,
    backend: ExecBackend | None,
    namespace: str,
    name: str,
) -> web.StreamResponse:
    """Validate the request as the API server and kubelet do, then stream the command."""
    q = request.query
    pod = store.get("pods", name, namespace)
    command = q.getall("command", [])
    if not command:
        raise errors.bad_request("you must specify at least 1 command")
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise errors.bad_request(
            f"cannot exec into a container in a completed pod; current phase is {phase}"
        )
    container = pick_container(pod, q.get("container"))
    if backend is None:
        raise errors.bad_request("this sandbox runs no node agent: pods have no processes")
    try:
        argv, env = backend.exec_argv(namespace, name, container, list(command))
    except LookupError as exc:
        raise errors.bad_request(f"unable to upgrade connection: {exc}") from exc
    ws = await execsession.stream(request, argv, env, stdin=_flag(q, "stdin"), tty=_flag(q, "tty"))
    if ws is None:
        raise errors.bad_request(
            "pods/exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io); "
            "the sandbox does not speak SPDY"
        )
    return ws
