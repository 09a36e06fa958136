"""``pods/log``: container logs from the files the node agent writes.

The agent writes each container run to
``<state_dir>/logs/<namespace>/<pod>/<container>/<restartCount>.log``; the current run is the
container status's ``restartCount`` and ``previous=true`` reads the one before. ``follow``
streams new bytes until that run has terminated (its status leaves ``running``, or the restart
count moves on) or the pod is gone. Errors are the kubelet's 400s (a container name is required
when there are several, unknown container, container still waiting to start...).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web
from elastrain_sandbox.apiserver import errors
from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.store import Store

FOLLOW_POLL = 0.1


def log_path(state_dir: Path, namespace: str, pod: str, container: str, restart: int) -> Path:
    return state_dir / "logs" / namespace / pod / container / f"{restart}.log"


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


def _status(pod: dict[str, Any], container: str) -> dict[str, Any] | None:
    status = pod.get("status") or {}
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if cs.get("name") == container:
            return dict(cs)
    return None


def _finished(cs: dict[str, Any] | None, restart: int) -> bool:
    if cs is None:
        return True
    if int(cs.get("restartCount", 0)) != restart:
        return True
    return "running" not in (cs.get("state") or {})


async def serve_log(
    request: web.Request, store: Store, state_dir: Path, namespace: str, name: str
) -> web.StreamResponse:
    q = request.query
    pod = store.get("pods", name, namespace)
    container = pick_container(pod, q.get("container"))
    cs = _status(pod, container)
    previous = q.get("previous", "").lower() in ("1", "true")
    restart = int((cs or {}).get("restartCount", 0))
    if previous:
        if cs is None or restart == 0:
            raise errors.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        restart -= 1
    path = log_path(state_dir, namespace, name, container, restart)
    if not path.exists():
        waiting = ((cs or {}).get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason") or "ContainerCreating"
        if cs is None or waiting or not previous:
            raise errors.bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: {reason}'
            )
    data = path.read_bytes() if path.exists() else b""
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
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(data)
    offset = path.stat().st_size if path.exists() else 0
    try:
        while True:
            chunk = _read_from(path, offset)
            if chunk:
                offset += len(chunk)
                await resp.write(chunk)
                continue
            try:
                current = store.get("pods", name, namespace)
            except ApiError:
                break
            if _finished(_status(current, container), restart):
                rest = _read_from(path, offset)
                if rest:
                    await resp.write(rest)
                break
            await asyncio.sleep(FOLLOW_POLL)
    except ConnectionResetError:
        return resp
    await resp.write_eof()
    return resp


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(1 << 20)
    except FileNotFoundError:
        return b""


def _int(raw: str | None) -> int | None:
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise errors.bad_request(f"invalid integer {raw!r}") from exc
