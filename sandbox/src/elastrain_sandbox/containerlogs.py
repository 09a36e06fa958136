"""Container logs: where the node agent writes each container run, and how both log endpoints
(the embedded API server's ``pods/log`` and the kubelet API's ``/containerLogs``) read them.

The agent writes each run to ``<state_dir>/logs/<namespace>/<pod>/<container>/<restartCount>.log``;
the current run is the container status's ``restartCount`` and ``previous=true`` reads the one
before. ``follow`` streams new bytes until that run has terminated (its status leaves
``running``, or the restart count moves on) or the pod is gone. Errors are the kubelet's 400s;
each server turns them into its own error type through ``refuse``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

FOLLOW_POLL = 0.1
Obj = dict[str, Any]


def log_path(state_dir: Path, namespace: str, pod: str, container: str, restart: int) -> Path:
    """Where a container run's output goes."""
    return state_dir / "logs" / namespace / pod / container / f"{restart}.log"


def container_status(pod: Obj, container: str) -> Obj | None:
    """The status of ``container`` (init containers included), or None before it has one."""
    status = pod.get("status") or {}
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if cs.get("name") == container:
            return dict(cs)
    return None


def _finished(cs: Obj | None, restart: int) -> bool:
    if cs is None or int(cs.get("restartCount", 0)) != restart:
        return True
    return "running" not in (cs.get("state") or {})


def _flag(query: Any, name: str) -> bool:
    return str(query.get(name, "")).lower() in ("1", "true")


def _int(raw: str | None, refuse: Callable[[str], Exception]) -> int | None:
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise refuse(f"invalid integer {raw!r}") from exc


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(1 << 20)
    except FileNotFoundError:
        return b""


async def serve(
    request: web.Request,
    state_dir: Path,
    pod: Obj,
    container: str,
    current: Callable[[], Obj | None],
    refuse: Callable[[str], Exception],
) -> web.StreamResponse:
    """Answer one log request for ``container`` of ``pod`` (``current`` re-reads the pod while
    following; None once it is gone). ``refuse(message)`` is the server's 400."""
    q = request.query
    meta = pod["metadata"]
    namespace, name = str(meta.get("namespace", "default")), str(meta["name"])
    cs = container_status(pod, container)
    previous = _flag(q, "previous")
    restart = int((cs or {}).get("restartCount", 0))
    if previous:
        if cs is None or restart == 0:
            raise refuse(f'previous terminated container "{container}" in pod "{name}" not found')
        restart -= 1
    path = log_path(state_dir, namespace, name, container, restart)
    if not path.exists():
        waiting = ((cs or {}).get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason") or "ContainerCreating"
        if cs is None or waiting or not previous:
            raise refuse(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
    data = path.read_bytes() if path.exists() else b""
    offset = len(data)
    tail = _int(q.get("tailLines"), refuse)
    if tail is not None:
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-tail:]) if tail > 0 else b""
    limit = _int(q.get("limitBytes"), refuse)
    if limit is not None:
        data = data[:limit]
    if not _flag(q, "follow") or previous:
        return web.Response(body=data, content_type="text/plain")
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(data)
    with contextlib.suppress(ConnectionResetError):
        while True:
            chunk = _read_from(path, offset)
            if chunk:
                offset += len(chunk)
                await resp.write(chunk)
                continue
            now = current()
            if now is None or _finished(container_status(now, container), restart):
                rest = _read_from(path, offset)
                if rest:
                    await resp.write(rest)
                break
            await asyncio.sleep(FOLLOW_POLL)
        await resp.write_eof()
    return resp
