"""``pods/proxy`` and ``services/proxy``: HTTP forwarded to a pod's IP, as the API server does.

``/api/v1/namespaces/NS/pods/[scheme:]NAME[:PORT]/proxy/PATH`` goes to ``http://podIP:PORT/PATH``
(no port: the first declared container port, else 80, as the pod REST's ``ResourceLocation``).
``services/[scheme:]NAME[:PORT]/proxy`` picks the service port by name or number (or the only
one), then a ready pod the selector matches and that port's ``targetPort`` on it: the sandbox
has no endpoints controller, so the selection is done here. The host reaches every pod IP (the
agent's bridge), so this is what lets ``kubectl get --raw .../pods/p:9090/proxy/metrics`` read
a trainer's metrics in the sandbox as on a cluster. Only ``http`` is spoken.
"""

from __future__ import annotations

import random
from typing import Any

import aiohttp
from aiohttp import web
from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.store import Store

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_read=300)


def _unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


def split_target(raw: str) -> tuple[str, str, str]:
    """``[scheme:]name[:port]`` -> (scheme, name, port); scheme defaults to http."""
    parts = raw.split(":")
    scheme = ""
    if len(parts) == 3:
        scheme, name, port = parts
    elif len(parts) == 2:
        name, port = parts
    else:
        name, port = raw, ""
    if scheme not in ("", "http"):
        raise _unavailable(f"scheme {scheme!r} is not supported by the sandbox's proxy")
    return "http", name, port


def _pod_ports(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        p
        for c in (pod.get("spec") or {}).get("containers") or []
        for p in c.get("ports") or []
        if "containerPort" in p
    ]


def _pod_port(pod: dict[str, Any], port: str) -> int:
    ports = _pod_ports(pod)
    if not port:
        return int(ports[0]["containerPort"]) if ports else 80
    if port.isdigit():
        return int(port)
    for p in ports:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise _unavailable(f"no port named {port!r} in pod {pod['metadata']['name']}")


def _pod_ip(pod: dict[str, Any]) -> str:
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        raise _unavailable(f"pod {pod['metadata']['name']} has no IP address yet")
    return str(ip)


def pod_target(store: Store, namespace: str, raw: str) -> tuple[str, str, int]:
    """(pod name, IP, port) for a ``pods/.../proxy`` request."""
    _, name, port = split_target(raw)
    pod = store.get("pods", name, namespace)
    return name, _pod_ip(pod), _pod_port(pod, port)


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return bool(status.get("podIP")) and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def service_target(store: Store, namespace: str, raw: str) -> tuple[str, str, int]:
    """(service name, IP, port) of a ready pod behind a ``services/.../proxy`` request."""
    _, name, port = split_target(raw)
    svc = store.get("services", name, namespace)
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    chosen = None
    for p in ports:
        if port in (p.get("name"), str(p.get("port"))) or (not port and len(ports) == 1):
            chosen = p
    if chosen is None:
        raise _unavailable(f'no service port "{port}" found for service "{name}"')
    selector = spec.get("selector") or {}
    selected = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    pods = [p for p in store.list("pods", namespace, selected).items if _ready(p)]
    if not selector or not pods:
        raise _unavailable(f'no endpoints available for service "{name}"')
    pod = random.choice(pods)
    target = chosen.get("targetPort", chosen.get("port"))
    return name, _pod_ip(pod), _pod_port(pod, str(target))


async def forward(request: web.Request, ip: str, port: int, path: str) -> web.StreamResponse:
    """Send ``request`` on to ``http://ip:port/path`` and stream the answer back."""
    url = f"http://{ip}:{port}/{path}"
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    body = await request.read() if request.can_read_body else None
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT, auto_decompress=False) as session,
            session.request(
                request.method,
                url,
                params=request.query,
                headers=headers,
                data=body,
                allow_redirects=False,
            ) as upstream,
        ):
            resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    resp.headers.add(key, value)
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            except (aiohttp.ClientError, TimeoutError, ConnectionResetError):
                return resp  # the status line is out: all that is left is to stop
            await resp.write_eof()
            return resp
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise _unavailable(f"error trying to reach service: {exc}") from exc
