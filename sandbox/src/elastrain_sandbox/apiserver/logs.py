"""``pods/log``: container logs from the files the node agent writes (``containerlogs``).

Errors are the kubelet's 400s as Kubernetes Status bodies (a container name is required when
there are several, unknown container, container still waiting to start...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from elastrain_sandbox import containerlogs
from elastrain_sandbox.apiserver import errors
from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.store import Store


def pick_container(pod: dict[str, Any], wanted: str | None) -> str:
    """The container a ``log``/``exec`` request means, or the kubelet's 400 (shared so both
    subresources name and reject containers alike)."""
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    name = pod["metadata"]["name"]
    if wanted is None:
        default = (pod["metadata"].get("annotations") or {}).get(
            "kubectl.kubernetes.io/default-container"
        )
        if default in names:
            return str(default)
        if len(names) == 1:
            return names[0]
        msg = (
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
        )
        if inits:
            msg += f" or one of the init containers: [{' '.join(inits)}]"
        raise errors.bad_request(msg)
    if wanted not in names and wanted not in inits:
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


async def serve_log(
    request: web.Request, store: Store, state_dir: Path, namespace: str, name: str
) -> web.StreamResponse:
    """``GET pods/<name>/log`` of a pod in the store."""
    pod = store.get("pods", name, namespace)
    container = pick_container(pod, request.query.get("container"))

    def current() -> dict[str, Any] | None:
        try:
            return store.get("pods", name, namespace)
        except ApiError:
            return None

    return await containerlogs.serve(
        request, state_dir, pod, container, current, errors.bad_request
    )
