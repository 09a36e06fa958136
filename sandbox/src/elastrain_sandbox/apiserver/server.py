"""The sandbox's HTTP API server (aiohttp): Kubernetes REST paths over the ``Store``.

Routing is done by hand from the path (``/api/v1/...``, ``/apis/<g>/<v>/...``, the legacy
``/watch/`` prefix, subresources) because the set of resources changes at run time with CRDs.
Every failure leaves as a ``Status`` body from ``ApiError``; an unexpected exception becomes a
500 ``InternalError`` Status and is logged, never a dropped connection. Every request is
recorded in the ``RequestLog``.

Content negotiation: JSON only (protobuf is never chosen; clients list JSON as a fallback),
``as=Table`` for kubectl's printing, ``as=PartialObjectMetadata[List]`` for metadata-only
clients, aggregated discovery (``as=APIGroupDiscoveryList``) on ``/api`` and ``/apis``.

Non-Kubernetes admin endpoints live under ``/sandbox/`` (request log, node operations).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from elastrain_sandbox.apiserver import (
    discovery,
    errors,
    openapi,
    protobuf,
    proxy,
    requestctx,
    scale,
    tables,
)
from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.execstream import ExecBackend, serve_exec
from elastrain_sandbox.apiserver.logs import serve_log
from elastrain_sandbox.apiserver.meta import set_condition, timestamp
from elastrain_sandbox.apiserver.requestlog import RequestLog
from elastrain_sandbox.apiserver.resources import ResourceType
from elastrain_sandbox.apiserver.selectors import LabelSelector
from elastrain_sandbox.apiserver.store import PATCH_APPLY, Store, Watch, WatchEvent

log = logging.getLogger(__name__)

KUBE_VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-elastrain-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25",
    "compiler": "gc",
    "platform": "linux/amd64",
}
DEFAULT_WATCH_TIMEOUT = 1800.0
_PROXY_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}
AdminHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(obj: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(
        body=json.dumps(obj, separators=(",", ":")).encode(),
        status=status,
        headers={"Content-Type": content_type},
    )


def _error(err: ApiError) -> web.Response:
    return _json(err.status(), status=err.code)


class _Request:
    """The parsed pieces of one resource request."""

    def __init__(self) -> None:
        self.rt: ResourceType | None = None
        self.version = ""
        self.namespace: str | None = None
        self.name: str | None = None
        self.sub: str | None = None
        self.verb = "nonResource"
        self.watch_prefix = False
        self.started = 0.0
        self.recorded = False

    @property
    def resource_label(self) -> str:
        if self.rt is None:
            return ""
        base = f"{self.rt.plural}.{self.rt.group}" if self.rt.group else self.rt.plural
        return f"{base}/{self.sub}" if self.sub else base


def _accept(request: web.Request) -> tuple[str, str]:
    """(what, version): what is ``json``, ``table``, ``partial`` or ``partiallist``."""
    header = request.headers.get("Accept", "") or "application/json"
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        media, params = fields[0], dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        if media not in ("application/json", "*/*", "application/*", "application/json-seq"):
            continue
        kind = params.get("as")
        if kind is None:
            return ("json", "")
        if params.get("g") == "meta.k8s.io" and kind == "Table":
            return ("table", params.get("v", "v1"))
        if params.get("g") == "meta.k8s.io" and kind in (
            "PartialObjectMetadata",
            "PartialObjectMetadataList",
        ):
            return ("partial", params.get("v", "v1"))
    raise ApiError(
        406,
        "NotAcceptable",
        f"only the following media types are accepted: application/json (got {header})",
    )


def _int_param(q: Any, name: str) -> int | None:
    raw = q.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise errors.bad_request(f"invalid {name} {raw!r}: must be an integer") from exc


def _bool_param(q: Any, name: str) -> bool:
    return str(q.get(name, "")).lower() in ("1", "true", "yes")


def _versioned(obj: dict[str, Any], rt: ResourceType, version: str) -> dict[str, Any]:
    want = rt.api_version(version)
    if obj.get("apiVersion") == want:
        return obj
    return {**obj, "apiVersion": want}


class ApiServer:
    """Serves ``store`` over HTTP; ``state_dir`` holds the node agent's container logs."""

    def __init__(
        self,
        store: Store,
        *,
        state_dir: Path,
        request_log: RequestLog | None = None,
        bookmark_interval: float = 30.0,
    ) -> None:
        self.store = store
        self.state_dir = state_dir
        self.request_log = request_log or RequestLog()
        self.bookmark_interval = bookmark_interval
        self.admin_routes: dict[tuple[str, str], AdminHandler] = {}
        self._shutdown = asyncio.Event()
        self._watches: set[Watch] = set()
        # The node agent, once started: runs ``pods/exec`` commands inside containers.
        self.exec_backend: ExecBackend | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._entry)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        # Open watches would hold shutdown for their whole timeout: end them now.
        self._shutdown.set()
        for watch in list(self._watches):
            watch.end()

    # ------------------------------------------------------------------ entry point
    async def _entry(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        parsed = _Request()
        parsed.started = started
        status = 500
        try:
            resp = await self._dispatch(request, parsed)
            status = resp.status
            return resp
        except ApiError as err:
            status = err.code
            return _error(err)
        except json.JSONDecodeError as exc:
            status = 400
            return _error(errors.bad_request(f"error decoding request body: {exc}"))
        except (ConnectionResetError, asyncio.CancelledError):
            status = 499
            raise
        except Exception as exc:
            log.exception("internal error on %s %s", request.method, request.path)
            return _error(ApiError(500, "InternalError", f"Internal error occurred: {exc!r}"))
        finally:
            if not parsed.recorded:
                self._record(request, parsed, status)

    def _record(self, request: web.Request, parsed: _Request, status: int) -> None:
        parsed.recorded = True
        self.request_log.record(
            request.method,
            request.path_qs,
            parsed.verb,
            parsed.resource_label,
            parsed.namespace or "",
            status,
            parsed.started,
        )

    async def _dispatch(self, request: web.Request, parsed: _Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/readyz", "/livez") or path.startswith(
            ("/healthz/", "/readyz/", "/livez/")
        ):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/version":
            return _json(KUBE_VERSION)
        if parts and parts[0] == "sandbox":
            handler = self.admin_routes.get((request.method, "/".join(parts[1:2])))
            if handler is None:
                raise errors.ApiError(
                    404, "NotFound", "the server could not find the requested resource"
                )
            return await handler(request)
        if parts[:1] == ["openapi"]:
            return self._openapi(parts, request)
        if parts[:1] == ["api"]:
            if len(parts) == 1:
                return self._discovery_root(request, core=True)
            if len(parts) == 2:
                doc = discovery.resource_list(self.store.resource_types(), "", parts[1])
                if doc is None:
                    raise _not_found()
                return _json(doc)
            return await self._resource(request, parsed, "", parts[1], parts[2:])
        if parts[:1] == ["apis"]:
            if len(parts) == 1:
                return self._discovery_root(request, core=False)
            if len(parts) == 2:
                doc = discovery.api_group(self.store.resource_types(), parts[1])
                if doc is None:
                    raise _not_found()
                return _json(doc)
            if len(parts) == 3:
                doc = discovery.resource_list(self.store.resource_types(), parts[1], parts[2])
                if doc is None:
                    raise _not_found()
                return _json(doc)
            return await self._resource(request, parsed, parts[1], parts[2], parts[3:])
        raise _not_found()

    def _discovery_root(self, request: web.Request, core: bool) -> web.Response:
        accept = request.headers.get("Accept", "")
        types = self.store.resource_types()
        for media, version in (
            (discovery.AGGREGATED_V2, "v2"),
            (discovery.AGGREGATED_V2BETA1, "v2beta1"),
        ):
            if _media_listed(accept, media):
                return _json(discovery.aggregated(types, core, version), content_type=media)
        return _json(discovery.api_versions() if core else discovery.api_group_list(types))

    def _openapi(self, parts: list[str], request: web.Request) -> web.Response:
        types = self.store.resource_types()
        if parts == ["openapi", "v3"]:
            return _json(openapi.root(types))
        if len(parts) > 2 and parts[1] == "v3":
            members = openapi.group_versions(types).get("/".join(parts[2:]))
            if members is not None:
                return _json(openapi.gv_document(members))
        raise _not_found()

    # ------------------------------------------------------------------ resources
    async def _resource(
        self, request: web.Request, parsed: _Request, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        if rest and rest[0] == "watch":
            parsed.watch_prefix = True
            rest = rest[1:]
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            parsed.namespace, rest = rest[1], rest[2:]
        if len(rest) >= 3 and rest[2] == "proxy" and group == "" and parsed.namespace:
            return await self._proxy(request, parsed, version, rest)
        if not rest or len(rest) > 3:
            raise _not_found()
        rt = self.store.lookup(group, version, rest[0])
        if rt is None:
            raise _not_found()
        parsed.rt, parsed.version = rt, version
        parsed.name = rest[1] if len(rest) > 1 else None
        parsed.sub = rest[2] if len(rest) > 2 else None
        if parsed.namespace is not None and not rt.namespaced:
            raise _not_found()
        if rt.namespaced and parsed.namespace is None and parsed.name is not None:
            raise _not_found()
        if parsed.sub is not None and parsed.sub not in rt.subresources:
            raise _not_found()
        q = request.query
        method = request.method
        if parsed.sub == "exec" and rt.key == ("", "pods") and parsed.name is not None:
            if method not in ("GET", "POST"):
                raise errors.method_not_allowed()
            parsed.verb = "get" if method == "GET" else "create"
            return await serve_exec(
                request, self.store, self.exec_backend, parsed.namespace or "", parsed.name
            )
        if method == "GET":
            if parsed.name is None:
                watching = parsed.watch_prefix or _bool_param(q, "watch")
                parsed.verb = "watch" if watching else "list"
                return await (
                    self._watch(request, parsed) if watching else self._list(request, parsed)
                )
            parsed.verb = "get"
            if parsed.sub is None and (parsed.watch_prefix or _bool_param(q, "watch")):
                parsed.verb = "watch"  # a single object's watch (legacy form)
                return await self._watch(request, parsed)
            return await self._get(request, parsed)
        token_v = requestctx.field_validation.set(q.get("fieldValidation", "Warn"))
        sink: list[str] = []
        token_w = requestctx.warnings.set(sink)
        try:
            resp = await self._write(request, parsed, method)
        finally:
            requestctx.field_validation.reset(token_v)
            requestctx.warnings.reset(token_w)
        for w in sink:
            quoted = w.replace("\\", "\\\\").replace('"', '\\"')  # RFC 9110 quoted-string
            resp.headers.add("Warning", f'299 - "{quoted}"')
        return resp

    async def _write(
        self, request: web.Request, parsed: _Request, method: str
    ) -> web.StreamResponse:
        rt = parsed.rt
        assert rt is not None
        q = request.query
        dry_run = "All" in q.getall("dryRun", [])
        if method == "POST":
            parsed.verb = "create"
            if parsed.sub is not None and parsed.name is not None:
                return await self._post_subresource(request, parsed)
            if parsed.name is not None:
                raise errors.method_not_allowed()
            if rt.namespaced and parsed.namespace is None:
                raise errors.method_not_allowed()
            body = await _body(request)
            _check_kind(body, rt, parsed.version)
            obj = self.store.create(rt, body, parsed.namespace, dry_run=dry_run)
            return _json(_versioned(obj, rt, parsed.version), status=201)
        if method == "PUT":
            parsed.verb = "update"
            if parsed.name is None:
                raise errors.method_not_allowed()
            body = await _body(request)
            if parsed.sub == "scale":
                return _json(
                    scale.write(self.store, rt, parsed.name, parsed.namespace, body, dry_run)
                )
            if parsed.sub not in (None, "status"):
                raise errors.method_not_allowed()
            _check_kind(body, rt, parsed.version)
            if (body.get("metadata") or {}).get("name") not in (None, parsed.name):
                raise errors.bad_request(
                    f"the name of the object ({body['metadata']['name']}) does not match "
                    f"the name on the URL ({parsed.name})"
                )
            body.setdefault("metadata", {})["name"] = parsed.name
            obj = self.store.update(
                rt, body, parsed.namespace, subresource=parsed.sub, dry_run=dry_run
            )
            return _json(_versioned(obj, rt, parsed.version))
        if method == "PATCH":
            parsed.verb = "patch"
            if parsed.name is None:
                raise errors.method_not_allowed()
            ctype = (request.content_type or "").split(";")[0].strip()
            if ctype == PATCH_APPLY:
                raise errors.unsupported_media_type(ctype)
            body = await _body(request)
            if parsed.sub == "scale":
                return _json(
                    scale.patch(self.store, rt, parsed.name, parsed.namespace, body, ctype, dry_run)
                )
            if parsed.sub not in (None, "status"):
                raise errors.method_not_allowed()
            obj = self.store.patch(
                rt,
                parsed.name,
                body,
                ctype,
                parsed.namespace,
                subresource=parsed.sub,
                dry_run=dry_run,
            )
            return _json(_versioned(obj, rt, parsed.version))
        if method == "DELETE":
            parsed.verb = "delete" if parsed.name else "deletecollection"
            if parsed.sub is not None:
                raise errors.method_not_allowed()
            opts = await _delete_options(request)
            if parsed.name is None:
                return await self._delete_collection(request, parsed, opts, dry_run)
            res = self.store.delete(
                rt,
                parsed.name,
                parsed.namespace,
                grace_period_seconds=opts.get("gracePeriodSeconds"),
                propagation_policy=opts.get("propagationPolicy"),
                preconditions=opts.get("preconditions"),
                dry_run=dry_run or "All" in (opts.get("dryRun") or []),
            )
            if res.deleted and rt.custom:
                md = res.obj["metadata"]
                return _json(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": {
                            "name": md["name"],
                            "group": rt.group,
                            "kind": rt.plural,
                            "uid": md["uid"],
                        },
                    }
                )
            return _json(_versioned(res.obj, rt, parsed.version))
        raise errors.method_not_allowed()

    async def _delete_collection(
        self, request: web.Request, parsed: _Request, opts: dict[str, Any], dry_run: bool
    ) -> web.Response:
        rt = parsed.rt
        assert rt is not None
        q = request.query
        items = self.store.list(
            rt, parsed.namespace, q.get("labelSelector"), q.get("fieldSelector")
        ).items
        out = []
        for obj in items:
            try:
                res = self.store.delete(
                    rt,
                    obj["metadata"]["name"],
                    obj["metadata"].get("namespace"),
                    grace_period_seconds=opts.get("gracePeriodSeconds"),
                    propagation_policy=opts.get("propagationPolicy"),
                    dry_run=dry_run,
                )
                out.append(_versioned(res.obj, rt, parsed.version))
            except ApiError as err:
                if err.code != 404:
                    raise
        return _json(
            {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version(parsed.version),
                "metadata": {},
                "items": out,
            }
        )

    async def _proxy(
        self, request: web.Request, parsed: _Request, version: str, rest: list[str]
    ) -> web.StreamResponse:
        """``pods/NAME[:PORT]/proxy/...`` and ``services/...``: forward to the pod's IP."""
        rt = self.store.lookup("", version, rest[0])
        if rt is None or rest[0] not in ("pods", "services"):
            raise _not_found()
        parsed.rt, parsed.version, parsed.sub = rt, version, "proxy"
        parsed.verb = _PROXY_VERBS.get(request.method, request.method.lower())
        namespace = parsed.namespace or ""
        target = proxy.pod_target if rest[0] == "pods" else proxy.service_target
        parsed.name, ip, port = target(self.store, namespace, rest[1])
        path = "/".join(rest[3:])
        if request.path.endswith("/") and path:
            path += "/"
        return await proxy.forward(request, ip, port, path)

    # -------------------------------------------------------------------- reads
    async def _get(self, request: web.Request, parsed: _Request) -> web.StreamResponse:
        rt = parsed.rt
        assert rt is not None and parsed.name is not None
        if parsed.sub == "log":
            return await serve_log(
                request, self.store, self.state_dir, parsed.namespace or "", parsed.name
            )
        if parsed.sub == "scale":
            return _json(scale.read(self.store, rt, parsed.name, parsed.namespace))
        if parsed.sub not in (None, "status"):
            raise errors.method_not_allowed()
        obj = _versioned(self.store.get(rt, parsed.name, parsed.namespace), rt, parsed.version)
        what, mv = _accept(request)
        if what == "table":
            t = tables.table(
                rt,
                [obj],
                obj["metadata"]["resourceVersion"],
                request.query.get("includeObject", "Metadata"),
            )
            t["apiVersion"] = f"meta.k8s.io/{mv}"
            return _json(t)
        if what == "partial":
            return _json(
                {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": f"meta.k8s.io/{mv}",
                    "metadata": obj["metadata"],
                }
            )
        return _json(obj)

    async def _list(self, request: web.Request, parsed: _Request) -> web.StreamResponse:
        rt = parsed.rt
        assert rt is not None
        q = request.query
        what, mv = _accept(request)
        limit = _int_param(q, "limit") or 0
        res = self.store.list(
            rt,
            parsed.namespace,
            q.get("labelSelector"),
            q.get("fieldSelector"),
            limit=limit,
            continue_token=q.get("continue") or None,
            copy=False,
        )
        items = [_versioned(o, rt, parsed.version) for o in res.items]
        if what == "table":
            t = tables.table(
                rt,
                items,
                res.resource_version,
                q.get("includeObject", "Metadata"),
                res.continue_token,
            )
            t["apiVersion"] = f"meta.k8s.io/{mv}"
            return _json(t)
        md: dict[str, Any] = {"resourceVersion": res.resource_version}
        if res.continue_token:
            md["continue"] = res.continue_token
            md["remainingItemCount"] = res.remaining
        if what == "partial":
            return _json(
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": f"meta.k8s.io/{mv}",
                    "metadata": md,
                    "items": [
                        {
                            "kind": "PartialObjectMetadata",
                            "apiVersion": f"meta.k8s.io/{mv}",
                            "metadata": o["metadata"],
                        }
                        for o in items
                    ],
                }
            )
        return _json(
            {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version(parsed.version),
                "metadata": md,
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, parsed: _Request) -> web.StreamResponse:
        rt = parsed.rt
        assert rt is not None
        q = request.query
        what, mv = _accept(request)
        field_selector = q.get("fieldSelector")
        if parsed.name is not None:
            field_selector = ",".join(
                filter(None, [field_selector, f"metadata.name={parsed.name}"])
            )
        timeout = float(_int_param(q, "timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        bookmarks = _bool_param(q, "allowWatchBookmarks")
        initial = _bool_param(q, "sendInitialEvents")
        rv = q.get("resourceVersion")
        if initial and rv not in (None, "", "0"):
            # sendInitialEvents with an explicit version: replay current state anyway.
            rv = None
        resp = web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"},
        )
        resp.enable_chunked_encoding()
        try:
            watch = self.store.watch(
                rt,
                parsed.namespace,
                LabelSelector.parse(q.get("labelSelector")),
                field_selector,
                rv,
            )
        except ApiError as err:
            if err.code != 410:
                raise
            await resp.prepare(request)
            await resp.write(_line({"type": "ERROR", "object": err.status()}))
            await resp.write_eof()
            return resp
        self._watches.add(watch)
        await resp.prepare(request)
        self._record(request, parsed, 200)  # counted once established, not when it ends
        include = q.get("includeObject", "Metadata")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if initial:
            watch.request_bookmark(initial_events_end=True)
        try:
            while not self._shutdown.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wait = min(remaining, self.bookmark_interval) if bookmarks else min(remaining, 5.0)
                try:
                    ev = await watch.next(wait)
                except StopAsyncIteration:
                    break
                if ev is None:
                    if bookmarks:
                        watch.request_bookmark()
                    continue
                await resp.write(_line(self._event_json(ev, parsed, what, mv, include)))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            watch.close()
            self._watches.discard(watch)
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp

    def _event_json(
        self, ev: WatchEvent, parsed: _Request, what: str, mv: str, include: str
    ) -> dict[str, Any]:
        rt = parsed.rt
        assert rt is not None
        if ev.type == "BOOKMARK":
            return {
                "type": "BOOKMARK",
                "object": {
                    "kind": rt.kind,
                    "apiVersion": rt.api_version(parsed.version),
                    "metadata": ev.obj["metadata"],
                },
            }
        obj = _versioned(ev.obj, rt, parsed.version)
        if what == "table":
            t = tables.table(rt, [obj], obj["metadata"]["resourceVersion"], include)
            t["apiVersion"] = f"meta.k8s.io/{mv}"
            return {"type": ev.type, "object": t}
        if what == "partial":
            return {
                "type": ev.type,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": f"meta.k8s.io/{mv}",
                    "metadata": obj["metadata"],
                },
            }
        return {"type": ev.type, "object": obj}

    # ------------------------------------------------------------------ subresources
    async def _post_subresource(self, request: web.Request, parsed: _Request) -> web.Response:
        rt = parsed.rt
        assert rt is not None and parsed.name is not None
        body = await _body(request)
        if parsed.sub == "binding":
            node = (body.get("target") or {}).get("name")
            if not node:
                raise errors.invalid(
                    "Binding",
                    "",
                    parsed.name,
                    [("FieldValueRequired", "target.name", "Required value")],
                )
            self.store.bind_pod(parsed.namespace or "", parsed.name, node)
            return _json(_success(), status=201)
        if parsed.sub == "eviction":
            opts = body.get("deleteOptions") or {}
            pod = self.store.get(rt, parsed.name, parsed.namespace)
            status = pod.get("status") or {}
            if set_condition(
                status,
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "lastTransitionTime": timestamp(),
                    "reason": "EvictionByEvictionAPI",
                    "message": "Eviction API: evicting",
                },
            ):
                self.store.patch(
                    rt,
                    parsed.name,
                    {"status": {"conditions": status["conditions"]}},
                    namespace=parsed.namespace,
                    subresource="status",
                )
            self.store.delete(
                rt,
                parsed.name,
                parsed.namespace,
                grace_period_seconds=opts.get("gracePeriodSeconds"),
                preconditions=opts.get("preconditions"),
            )
            return _json(_success(), status=201)
        raise errors.method_not_allowed()


def _success() -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def _not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", details={})


def _media_listed(accept: str, media: str) -> bool:
    want = {p.strip() for p in media.split(";")}
    return any({p.strip() for p in part.split(";")} == want for part in accept.split(","))


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise errors.bad_request("the request body is empty")
    ctype = (request.content_type or "application/json").split(";")[0].strip()
    if ctype == "application/vnd.kubernetes.protobuf":
        return protobuf.decode(raw)
    if ctype in ("application/yaml", "application/apply-patch+yaml"):
        import yaml

        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise errors.bad_request(f"error decoding YAML: {exc}") from exc
    if not (ctype.endswith("json") or ctype in ("", "text/plain", "application/octet-stream")):
        raise errors.unsupported_media_type(ctype)
    return json.loads(raw)


def _check_kind(body: Any, rt: ResourceType, version: str) -> None:
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a JSON object")
    kind = body.get("kind")
    if kind and kind != rt.kind:
        raise errors.bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
        )
    av = body.get("apiVersion")
    if av and av.rpartition("/")[0] != rt.group:
        raise errors.bad_request(
            f"the API version in the data ({av}) does not match the expected API version "
            f"({rt.api_version(version)})"
        )


async def _delete_options(request: web.Request) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    raw = await request.read()
    if raw and request.content_type == "application/vnd.kubernetes.protobuf":
        opts.update(protobuf.decode(raw))
    elif raw:
        body = json.loads(raw)
        if isinstance(body, dict):
            opts.update(body)
    q = request.query
    grace = _int_param(q, "gracePeriodSeconds")
    if grace is not None:
        opts["gracePeriodSeconds"] = grace
    if q.get("propagationPolicy"):
        opts["propagationPolicy"] = q["propagationPolicy"]
    if q.get("orphanDependents") is not None and "propagationPolicy" not in opts:
        opts["propagationPolicy"] = "Orphan" if _bool_param(q, "orphanDependents") else "Background"
    if opts.get("orphanDependents") is not None and "propagationPolicy" not in opts:
        opts["propagationPolicy"] = "Orphan" if opts["orphanDependents"] else "Background"
    if q.getall("dryRun", []):
        opts["dryRun"] = q.getall("dryRun")
    return opts
