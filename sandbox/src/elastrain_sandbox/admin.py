"""Admin endpoints under ``/sandbox/`` (not Kubernetes APIs): request log and node operations.

* ``GET /sandbox/requests?since=SEQ`` -> ``{"next", "items", "counts"}``
* ``POST /sandbox/nodes`` with ``{"name", "gpus"?, "cpus"?, "memory"?, "labels"?, "taints"?}``
* ``POST /sandbox/nodes/<name>/(ready|not-ready|unreachable)``
* ``DELETE /sandbox/nodes/<name>``

Errors are Kubernetes Status bodies like everything else the server answers.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from elastrain_sandbox.apiserver import errors

if TYPE_CHECKING:
    from elastrain_sandbox.runtime import SandboxRuntime


def _ok(obj: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(obj).encode(), status=status, content_type="application/json"
    )


def install_admin_routes(rt: SandboxRuntime) -> None:
    async def requests(request: web.Request) -> web.StreamResponse:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError as exc:
            raise errors.bad_request("since must be an integer") from exc
        return _ok(rt.request_log.to_json(since))

    async def add_node(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            raise errors.bad_request(f"invalid JSON: {exc}") from exc
        if not isinstance(body, dict) or not body.get("name"):
            raise errors.bad_request("a node name is required")
        node = rt.add_node(
            str(body["name"]),
            gpus=body.get("gpus"),
            cpus=body.get("cpus"),
            memory=body.get("memory"),
            labels=body.get("labels"),
            taints=body.get("taints"),
        )
        return _ok(node, 201)

    async def node_op(request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if len(parts) == 3 and request.method == "DELETE":
            rt.remove_node(parts[2])
            return _ok({"kind": "Status", "apiVersion": "v1", "status": "Success"})
        if len(parts) == 4 and request.method == "POST":
            state = {"ready": True, "not-ready": False, "unreachable": None}
            if parts[3] not in state:
                raise errors.bad_request(f"unknown node operation {parts[3]!r}")
            return _ok(rt.set_node_ready(parts[2], state[parts[3]]))
        raise errors.method_not_allowed()

    async def nodes(request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if len(parts) == 2 and request.method == "POST":
            return await add_node(request)
        return await node_op(request)

    routes = rt.server.admin_routes
    routes[("GET", "requests")] = requests
    for method in ("POST", "DELETE"):
        routes[(method, "nodes")] = nodes
