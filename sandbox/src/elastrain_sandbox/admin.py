"""Admin endpoints under ``/sandbox/`` (not Kubernetes APIs): request log and node operations.

* ``GET /sandbox/requests?since=SEQ`` -> ``{"next", "items", "counts"}``
* ``POST /sandbox/nodes`` with ``{"name", "gpus"?, "cpus"?, "memory"?, "labels"?, "taints"?}``
* ``POST /sandbox/nodes/<name>/(ready|not-ready|unreachable)``
* ``DELETE /sandbox/nodes/<name>``

Errors are Kubernetes Status bodies like everything else the server answers.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, TypedDict, Unpack

from aiohttp import web

from elastrain_sandbox.apiserver import errors
from elastrain_sandbox.apiserver.requestlog import RequestLog
from elastrain_sandbox.apiserver.server import AdminHandler


class NodeOptions(TypedDict, total=False):
    """A node's shape beyond its name (``add_node``); unset or None takes the sandbox's
    per-node default. One definition serves the runtime, ``Sandbox`` and the admin API."""

    gpus: int | None
    cpus: int | None
    memory: str | None
    labels: dict[str, str] | None
    taints: list[dict[str, Any]] | None


class NodeAdmin(Protocol):
    """The node operations a cluster offers its tests: what a cloud provider or an operator
    with SSH would do to real nodes. The runtime implements it; this module only serves it."""

    def add_node(self, name: str, **options: Unpack[NodeOptions]) -> dict[str, Any]: ...

    def remove_node(self, name: str) -> None: ...

    def set_node_ready(self, name: str, ready: bool | None) -> dict[str, Any]: ...


def _ok(obj: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(obj).encode(), status=status, content_type="application/json"
    )


def install_admin_routes(
    routes: dict[tuple[str, str], AdminHandler], request_log: RequestLog, nodes_admin: NodeAdmin
) -> None:
    """Serve the endpoints above from ``routes`` (the API server's admin route table)."""

    async def requests(request: web.Request) -> web.StreamResponse:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError as exc:
            raise errors.bad_request("since must be an integer") from exc
        return _ok(request_log.to_json(since))

    async def add_node(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            raise errors.bad_request(f"invalid JSON: {exc}") from exc
        if not isinstance(body, dict) or not body.get("name"):
            raise errors.bad_request("a node name is required")
        node = nodes_admin.add_node(
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
            nodes_admin.remove_node(parts[2])
            return _ok({"kind": "Status", "apiVersion": "v1", "status": "Success"})
        if len(parts) == 4 and request.method == "POST":
            state = {"ready": True, "not-ready": False, "unreachable": None}
            if parts[3] not in state:
                raise errors.bad_request(f"unknown node operation {parts[3]!r}")
            return _ok(nodes_admin.set_node_ready(parts[2], state[parts[3]]))
        raise errors.method_not_allowed()

    async def nodes(request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if len(parts) == 2 and request.method == "POST":
            return await add_node(request)
        return await node_op(request)

    routes[("GET", "requests")] = requests
    for method in ("POST", "DELETE"):
        routes[(method, "nodes")] = nodes
