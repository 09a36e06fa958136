"""The sandbox's object store: the single source of truth behind the API server.

Python API (used by the HTTP layer and, in-process, by the scheduler, controllers and the node
agent)::

    store.get("pods", name, namespace="ns")                      -> dict
    store.list("pods", namespace=None, label_selector="a=b",
               field_selector="spec.nodeName=n1", limit=0)        -> ListResult
    store.create("pods", obj, namespace="ns")                     -> dict
    store.update("pods", obj, namespace="ns", subresource=None)  -> dict   (PUT semantics)
    store.patch("pods", name, patch, PATCH_MERGE, namespace="ns",
                subresource="status")                             -> dict
    store.delete("pods", name, namespace="ns", grace_period_seconds=0) -> DeleteResult
    async for ev in store.watch("pods", namespace=None, resource_version="123"): ...
    store.add_listener(fn)   # fn(WatchEvent) called synchronously after every commit

``resource`` is a plural (``"pods"``), ``"plural.group"`` (``"trainingjobs.elastrain.dev"``)
or a ``ResourceType``. Every method raises ``ApiError`` with the Status the real API server
would return (404, 409 AlreadyExists/Conflict, 422...). Returned objects are private copies.

Semantics kept from the API server: a cluster-wide increasing ``resourceVersion``; ``uid``,
``creationTimestamp``, ``generation`` (bumped by spec changes when a status subresource exists,
by any non-metadata change otherwise); the status subresource split (main writes keep the old
status, ``status`` writes keep everything but status); finalizers and ``deletionTimestamp``;
graceful pod deletion (a pod with a running container on a node is only *marked*: the node
agent removes it with ``grace_period_seconds=0`` once its processes are gone);
uid/resourceVersion preconditions;
bounded watch history with 410 Expired beyond it.

Threading model: all state sits behind one ``threading.RLock``; every method is synchronous,
short and safe from any thread. Watches are asyncio iterators bound to the event loop they are
iterated on: commits hand events over with ``loop.call_soon_threadsafe``, so a writer in another
thread (a test, the CLI) never touches a loop it does not own. Listeners run under the lock and
must only enqueue work (controllers do their real work on the loop).

Indexes: objects by resource -> namespace -> name, a label index (key, value) -> names per
resource (pods also by ``spec.nodeName``), a uid index and an owner-uid -> dependents index,
so a selective list or a garbage-collection lookup costs what it returns rather than a scan.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from elastrain_sandbox.apiserver import errors
from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.meta import clone, generate_name, now, set_condition, timestamp
from elastrain_sandbox.apiserver.patch import json_patch, merge_patch, strategic_merge_patch
from elastrain_sandbox.apiserver.resources import BUILTIN, ResKey, ResourceType
from elastrain_sandbox.apiserver.selectors import FieldSelector, LabelSelector
from elastrain_sandbox.apiserver.watch import Watch, WatchEvent, _Watcher

PATCH_MERGE = "application/merge-patch+json"
PATCH_JSON = "application/json-patch+json"
PATCH_STRATEGIC = "application/strategic-merge-patch+json"
PATCH_APPLY = "application/apply-patch+yaml"

__all__ = [
    "PATCH_JSON",
    "PATCH_MERGE",
    "PATCH_STRATEGIC",
    "Admitter",
    "DeleteResult",
    "ListResult",
    "Store",
    "Watch",
    "WatchEvent",
]

log = logging.getLogger(__name__)

DEFAULT_HISTORY = 50_000
# A plural ("pods"), "plural.group", a (group, plural) key or the ResourceType itself.
ResourceRef = str | ResKey | ResourceType


@dataclass(frozen=True)
class AdmissionRequest:
    """One write as an admitter sees it: the resource, the incoming object, the stored object
    (None on create) and the subresource written (None for the main resource). One value
    rather than four parameters, so every admitter shares a one-line signature."""

    rt: ResourceType
    obj: dict[str, Any]
    old: dict[str, Any] | None
    subresource: str | None


class Admitter(Protocol):
    """Defaulting and validation for one resource (built-in rules or a CRD's schema)."""

    def admit(self, req: AdmissionRequest) -> dict[str, Any]:
        """Return the (defaulted, pruned) object or raise ``ApiError`` (422)."""
        ...


@dataclass
class ListResult:
    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str | None = None
    remaining: int | None = None


@dataclass
class DeleteResult:
    """The object after the delete call and whether it is gone (vs only marked)."""

    obj: dict[str, Any]
    deleted: bool


def _name_key(obj: dict[str, Any]) -> tuple[str, str]:
    md = obj["metadata"]
    return (md.get("namespace", ""), md["name"])


class Store:
    """Thread-safe in-memory object store with Kubernetes write semantics (see module doc)."""

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        self._lock = threading.RLock()
        self._rv = 0
        self._types: dict[ResKey, ResourceType] = {}
        self._admitters: dict[ResKey, Admitter] = {}
        self._data: dict[ResKey, dict[str, dict[str, dict[str, Any]]]] = {}
        self._labels: dict[ResKey, dict[tuple[str, str], set[tuple[str, str]]]] = {}
        self._uids: dict[str, tuple[ResKey, str, str]] = {}
        self._dependents: dict[str, set[tuple[ResKey, str, str]]] = {}
        self._history: deque[WatchEvent] = deque(maxlen=history)
        self._compacted = 0  # highest resourceVersion dropped from the history
        self._watchers: dict[ResKey, set[_Watcher]] = {}
        self._listeners: list[Callable[[WatchEvent], None]] = []
        for rt in BUILTIN:
            self.register(rt)

    # ----------------------------------------------------------------- resource registry
    def register(self, rt: ResourceType, admitter: Admitter | None = None) -> None:
        """Serve ``rt`` (idempotent; a CRD update replaces the type but keeps objects)."""
        with self._lock:
            self._types[rt.key] = rt
            self._data.setdefault(rt.key, {})
            self._labels.setdefault(rt.key, {})
            if admitter is not None:
                self._admitters[rt.key] = admitter

    def set_admitter(self, key: ResKey, admitter: Admitter) -> None:
        with self._lock:
            self._admitters[key] = admitter

    def unregister(self, key: ResKey) -> None:
        """Stop serving a resource: its objects vanish and its watches end."""
        with self._lock:
            self._types.pop(key, None)
            self._admitters.pop(key, None)
            for ns_objs in self._data.pop(key, {}).values():
                for obj in ns_objs.values():
                    self._uids.pop(obj["metadata"]["uid"], None)
            self._labels.pop(key, None)
            for w in self._watchers.pop(key, set()):
                w.push(None)

    def resource_types(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def resolve(self, resource: ResourceRef) -> ResourceType:
        """A ``ResourceType`` from a plural, ``plural.group`` or ``(group, plural)``."""
        if isinstance(resource, ResourceType):
            return resource
        if isinstance(resource, tuple):
            key = resource
        else:
            plural, _, group = resource.partition(".")
            key = (group, plural)
        with self._lock:
            rt = self._types.get(key)
            if rt is None and isinstance(resource, str) and "." not in resource:
                # A bare plural outside the core group is fine when it is unambiguous.
                matches = [t for t in self._types.values() if t.plural == resource]
                rt = matches[0] if len(matches) == 1 else None
        if rt is None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({resource})"
            )
        return rt

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at ``/apis/<group>/<version>/<plural>``, if any."""
        with self._lock:
            rt = self._types.get((group, plural))
        return rt if rt is not None and version in rt.versions else None

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    # ------------------------------------------------------------------------- reads
    def _get_ref(self, rt: ResourceType, name: str, namespace: str | None) -> dict[str, Any]:
        ns = namespace or "" if rt.namespaced else ""
        obj = self._data.get(rt.key, {}).get(ns, {}).get(name)
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return obj

    def get(self, resource: ResourceRef, name: str, namespace: str | None = None) -> dict[str, Any]:
        rt = self.resolve(resource)
        with self._lock:
            return clone(self._get_ref(rt, name, namespace))

    def get_by_uid(self, uid: str) -> dict[str, Any] | None:
        """A copy of the object with ``uid``, if it exists (``locate`` without the type)."""
        found = self.locate(uid)
        return found[1] if found is not None else None

    def uid_exists(self, uid: str) -> bool:
        """Whether an object with ``uid`` exists (cheap: no copy)."""
        with self._lock:
            return uid in self._uids

    def locate(self, uid: str) -> tuple[ResourceType, dict[str, Any]] | None:
        """The type and a copy of the object with ``uid``, if it exists."""
        with self._lock:
            loc = self._uids.get(uid)
            if loc is None:
                return None
            key, ns, name = loc
            obj = self._data.get(key, {}).get(ns, {}).get(name)
            return (self._types[key], clone(obj)) if obj is not None else None

    def dependents(self, owner_uid: str) -> list[tuple[ResourceType, dict[str, Any]]]:
        """Objects whose ownerReferences name ``owner_uid`` (from the owner index)."""
        with self._lock:
            out = []
            for key, ns, name in sorted(self._dependents.get(owner_uid, ())):
                obj = self._data.get(key, {}).get(ns, {}).get(name)
                if obj is not None:
                    out.append((self._types[key], clone(obj)))
            return out

    def _candidates(
        self, rt: ResourceType, namespace: str | None, labels: LabelSelector, fields: FieldSelector
    ) -> Iterable[dict[str, Any]]:
        data = self._data.get(rt.key, {})
        name = fields.value_for("metadata.name")
        if namespace is None:
            namespace = fields.value_for("metadata.namespace") if rt.namespaced else None
        terms = labels.index_terms()
        node = fields.value_for("spec.nodeName") if rt.key == _PODS else None
        if node is not None:
            terms.append((_NODE_TERM, node))
        if terms:
            index = self._labels.get(rt.key, {})
            sets = [index.get(t, set()) for t in terms]
            keys = min(sets, key=len)
            for ns, nm in keys:
                if (namespace is None or ns == namespace) and (name is None or nm == name):
                    obj = data.get(ns, {}).get(nm)
                    if obj is not None:
                        yield obj
            return
        spaces = [namespace or ""] if namespace is not None or not rt.namespaced else list(data)
        for ns in spaces:
            objs = data.get(ns, {})
            if name is not None:
                if name in objs:
                    yield objs[name]
            else:
                yield from objs.values()

    def list(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        limit: int = 0,
        continue_token: str | None = None,
        copy: bool = True,
    ) -> ListResult:
        """Matching objects sorted by namespace/name, paginated by ``limit``/``continue``.

        A continue token carries the list's resourceVersion and the last key returned; later
        pages are served from the snapshot at that version (rebuilt from the watch history),
        and the token answers 410 once that version has left the history, as after etcd
        compaction.
        ``copy=False`` returns the stored objects themselves (read-only; the HTTP layer uses it
        to serialise without an extra copy).
        """
        rt = self.resolve(resource)
        labels, fields = _selectors(rt, label_selector, field_selector)
        start: tuple[str, str] | None = None
        with self._lock:
            list_rv = self._rv
            if continue_token:
                list_rv, start = self._decode_continue(continue_token)
            ns = namespace if rt.namespaced else None
            if start is None:
                candidates: Iterable[dict[str, Any]] = self._candidates(rt, ns, labels, fields)
            else:
                candidates = self._snapshot(rt, ns, labels, fields, list_rv)
            items = [
                o
                for o in candidates
                if labels.matches(o["metadata"].get("labels")) and fields.matches(o)
            ]
            items.sort(key=_name_key)
            if start is not None:
                items = [o for o in items if _name_key(o) > start]
            token = None
            remaining = None
            if limit and len(items) > limit:
                remaining = len(items) - limit
                items = items[:limit]
                token = self._encode_continue(list_rv, _name_key(items[-1]))
            if copy:
                items = [clone(o) for o in items]
            return ListResult(items, str(list_rv), token, remaining)

    def _snapshot(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        rv: int,
    ) -> Iterable[dict[str, Any]]:
        """The objects as they were at ``rv``: later pages of a paginated list come from the
        same consistent snapshot as the first, as etcd serves them. Each object changed since
        is rolled back to its state before the earliest retained change after ``rv``."""
        at_rv: dict[tuple[str, str], dict[str, Any] | None] = {}
        for ev in reversed(self._history):
            if ev.rv <= rv:
                break
            if ev.rt.key == rt.key:
                at_rv[_name_key(ev.obj)] = ev.old if ev.type != "ADDED" else None
        current = {_name_key(o): o for o in self._candidates(rt, namespace, labels, fields)}
        for key, old in at_rv.items():
            if old is None:
                current.pop(key, None)
            elif namespace is None or key[0] == namespace:
                current[key] = old
        return current.values()

    def _encode_continue(self, rv: int, key: tuple[str, str]) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(key)}).encode()
        return base64.urlsafe_b64encode(raw).decode()

    def _decode_continue(self, token: str) -> tuple[int, tuple[str, str]]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            rv, start = int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise errors.bad_request(f"continue key is not valid: {exc}") from exc
        if rv < self._compacted:
            raise errors.gone(
                "The provided continue parameter is too old to display a consistent list result. "
                "You can start a new list without the continue parameter."
            )
        return rv, start

    # ------------------------------------------------------------------------ writes
    def _namespace_of(self, rt: ResourceType, obj: dict[str, Any], namespace: str | None) -> str:
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise errors.bad_request("metadata must be an object")
        if not isinstance(md.get("name", ""), str) or not isinstance(md.get("namespace", ""), str):
            raise errors.bad_request("metadata.name and metadata.namespace must be strings")
        if not rt.namespaced:
            md.pop("namespace", None)
            return ""
        ns = namespace or md.get("namespace") or "default"
        if md.get("namespace") and md["namespace"] != ns:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        md["namespace"] = ns
        return ns

    def _check_namespace(self, ns: str, rt: ResourceType, name: str) -> None:
        if not rt.namespaced:
            return
        nso = self._data[("", "namespaces")].get("", {}).get(ns)
        if nso is None:
            raise errors.not_found("namespaces", "", ns)
        if nso["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                rt.plural,
                rt.group,
                name,
                f"unable to create new content in namespace {ns} because it is being terminated",
            )

    def create(
        self,
        resource: ResourceRef,
        obj: dict[str, Any],
        namespace: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """POST semantics: name/generateName, uid, timestamps, admission, 409 on duplicates."""
        rt = self.resolve(resource)
        obj = clone(obj)
        if not isinstance(obj, dict):
            raise errors.bad_request("the object must be a JSON object")
        with self._lock:
            ns = self._namespace_of(rt, obj, namespace)
            md = obj["metadata"]
            if not md.get("name"):
                if md.get("generateName"):
                    md["name"] = generate_name(md["generateName"])
                else:
                    raise errors.invalid(
                        rt.kind,
                        rt.group,
                        "",
                        [
                            (
                                "FieldValueRequired",
                                "metadata.name",
                                "Required value: name or generateName is required",
                            )
                        ],
                    )
            name = md["name"]
            self._check_namespace(ns, rt, name)
            if name in self._data[rt.key].get(ns, {}):
                raise errors.already_exists(rt.plural, rt.group, name)
            for k in (
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
                "selfLink",
            ):
                md.pop(k, None)
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = timestamp()
            md["generation"] = 1
            obj["apiVersion"] = rt.api_version()
            obj["kind"] = rt.kind
            if rt.status_subresource and rt.custom:
                obj.pop("status", None)
            obj = self._admit(rt, obj, None, None)
            if dry_run:
                return obj
            self._commit(rt, "ADDED", obj, None)
            return clone(obj)

    def _admit(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, sub: str | None
    ) -> dict[str, Any]:
        _check_metadata(rt, obj)
        admitter = self._admitters.get(rt.key)
        return admitter.admit(AdmissionRequest(rt, obj, old, sub)) if admitter is not None else obj

    def update(
        self,
        resource: ResourceRef,
        obj: dict[str, Any],
        namespace: str | None = None,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT semantics with optimistic concurrency on ``metadata.resourceVersion``."""
        rt = self.resolve(resource)
        obj = clone(obj)
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
            raise errors.bad_request("the object must be a JSON object with metadata")
        with self._lock:
            ns = self._namespace_of(rt, obj, namespace)
            name = obj["metadata"].get("name")
            if not name:
                raise errors.bad_request("name is required")
            old = self._get_ref(rt, name, ns)
            _check_resource_version(rt, name, old, obj)
            return self._write(rt, old, obj, subresource, dry_run)

    def patch(
        self,
        resource: ResourceRef,
        name: str,
        patch: Any,
        patch_type: str = PATCH_MERGE,
        namespace: str | None = None,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PATCH: applied to the current object under the lock, so it never conflicts unless
        the patch itself carries a resourceVersion (or a JSON patch ``test`` fails: 422)."""
        rt = self.resolve(resource)
        with self._lock:
            old = self._get_ref(rt, name, namespace if rt.namespaced else None)
            base = clone(old)
            if patch_type == PATCH_MERGE:
                new = merge_patch(base, patch)
            elif patch_type == PATCH_JSON:
                new = json_patch(base, patch)
            elif patch_type == PATCH_STRATEGIC:
                if rt.custom:
                    raise errors.unsupported_media_type(patch_type)
                new = strategic_merge_patch(base, patch)
            else:
                raise errors.unsupported_media_type(patch_type)
            if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
                raise errors.bad_request("the patch must leave an object with metadata")
            _check_resource_version(rt, name, old, new)
            if new["metadata"].get("name") != name:
                raise errors.bad_request(
                    f"the name of the object ({new['metadata'].get('name')}) does not match "
                    f"the name on the URL ({name})"
                )
            return self._write(rt, old, new, subresource, dry_run)

    def _write(
        self,
        rt: ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        """The shared tail of update and patch: immutable fields, status split, generation,
        finalizer checks, admission, commit (or final removal when the last finalizer goes)."""
        omd, nmd = old["metadata"], new["metadata"]
        new["apiVersion"] = rt.api_version()
        new["kind"] = rt.kind
        if subresource == "status":
            status = new.get("status")
            new = clone(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            nmd = new["metadata"]
        elif rt.status_subresource:
            if "status" in old:
                new["status"] = clone(old["status"])
            else:
                new.pop("status", None)
        for k in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
        ):
            if k in omd:
                nmd[k] = omd[k]
            else:
                nmd.pop(k, None)
        nmd["resourceVersion"] = omd["resourceVersion"]
        nmd["generation"] = omd.get("generation", 1)
        if nmd.get("name") != omd["name"]:
            raise errors.bad_request(
                f"the name of the object ({nmd.get('name')}) does not match the name on the "
                f"URL ({omd['name']})"
            )
        if omd.get("deletionTimestamp"):
            added = set(nmd.get("finalizers") or []) - set(omd.get("finalizers") or [])
            if added:
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    omd["name"],
                    [
                        (
                            "FieldValueForbidden",
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added if the object is "
                            "being deleted, found new finalizers " + json.dumps(sorted(added)),
                        )
                    ],
                )
        new = self._admit(rt, new, old, subresource)
        if _spec_changed(rt, old, new):
            new["metadata"]["generation"] = omd.get("generation", 1) + 1
        if dry_run:
            return new
        if new == old:
            return clone(old)  # a no-op write does not bump resourceVersion, as on a cluster
        nmd = new["metadata"]
        ns_pending = rt.key == ("", "namespaces") and (new.get("spec") or {}).get("finalizers")
        if (
            nmd.get("deletionTimestamp")
            and not ns_pending
            and not nmd.get("finalizers")
            and not nmd.get("deletionGracePeriodSeconds")
        ):
            self._commit(rt, "MODIFIED", new, old)
            self._remove(rt, new)
            return clone(new)
        self._commit(rt, "MODIFIED", new, old)
        return clone(new)

    def bind_pod(self, namespace: str, name: str, node: str) -> dict[str, Any]:
        """``pods/binding``: set ``spec.nodeName`` and ``PodScheduled=True`` in one commit,
        as the binding registry does; 409 when the pod is already bound or terminating."""
        rt = self.resolve("pods")
        with self._lock:
            old = self._get_ref(rt, name, namespace)
            current = (old.get("spec") or {}).get("nodeName")
            if current:
                raise errors.conflict(
                    "pods", "", name, f'pod {name} is already assigned to node "{current}"'
                )
            if old["metadata"].get("deletionTimestamp"):
                raise errors.conflict(
                    "pods", "", name, "pod is being deleted, cannot be assigned to a host"
                )
            new = clone(old)
            new["spec"]["nodeName"] = node
            status = new.setdefault("status", {})
            set_condition(
                status,
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": timestamp(),
                },
            )
            self._commit(rt, "MODIFIED", new, old)
            return clone(new)

    # ----------------------------------------------------------------------- delete
    def delete(
        self,
        resource: ResourceRef,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> DeleteResult:
        """DELETE: removes the object, or marks it (``deletionTimestamp``) when finalizers,
        foreground/orphan propagation or a graceful pod shutdown must happen first."""
        rt = self.resolve(resource)
        with self._lock:
            old = self._get_ref(rt, name, namespace if rt.namespaced else None)
            omd = old["metadata"]
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != omd["uid"]:
                raise errors.conflict(
                    rt.plural,
                    rt.group,
                    name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                    f"meta: {omd['uid']}",
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != omd["resourceVersion"]:
                raise errors.conflict(
                    rt.plural,
                    rt.group,
                    name,
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {omd['resourceVersion']}",
                )
            if propagation_policy not in (None, "Background", "Foreground", "Orphan"):
                raise errors.bad_request(f"unsupported propagationPolicy {propagation_policy!r}")
            new = clone(old)
            md = new["metadata"]
            finalizers = list(md.get("finalizers") or [])
            if propagation_policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            if propagation_policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            if rt.key == ("", "namespaces") and "kubernetes" in (old.get("spec") or {}).get(
                "finalizers", []
            ):
                new.setdefault("status", {})["phase"] = "Terminating"
            grace = self._pod_grace(rt, old, grace_period_seconds)
            if dry_run:
                return DeleteResult(new, False)
            blocked_by_ns = rt.key == ("", "namespaces") and (old.get("spec") or {}).get(
                "finalizers"
            )
            if old["metadata"].get("deletionTimestamp"):
                cur = omd.get("deletionGracePeriodSeconds")
                if not cur:
                    # As the API server's BeforeDelete: a deletion whose grace period is over
                    # (0 or unset) is no longer graceful, so any delete completes it unless
                    # finalizers still hold it (``0 < 0`` must not make it a no-op).
                    if md.get("finalizers") or blocked_by_ns:
                        return DeleteResult(clone(old), False)
                    self._remove(rt, old)
                    return DeleteResult(clone(old), True)
                # Graceful deletion pending: only a shorter grace period changes anything; a pod
                # with nothing left running has nothing to wait for.
                if rt.key == ("", "pods") and grace is None:
                    grace = 0
                if grace is not None and grace < cur:
                    md["deletionGracePeriodSeconds"] = grace
                    md["deletionTimestamp"] = timestamp(now() + timedelta(seconds=grace))
                    if grace == 0 and not md.get("finalizers"):
                        self._commit(rt, "MODIFIED", new, old)
                        self._remove(rt, new)
                        return DeleteResult(clone(new), True)
                    self._commit(rt, "MODIFIED", new, old)
                    return DeleteResult(clone(new), False)
                return DeleteResult(clone(old), False)
            if not finalizers and not grace and not blocked_by_ns:
                self._remove(rt, old)
                return DeleteResult(clone(old), True)
            md["finalizers"] = finalizers
            if not finalizers:
                md.pop("finalizers")
            md["deletionTimestamp"] = timestamp(now() + timedelta(seconds=grace or 0))
            md["deletionGracePeriodSeconds"] = grace or 0
            md["generation"] = md.get("generation", 1) + 1
            self._commit(rt, "MODIFIED", new, old)
            return DeleteResult(clone(new), False)

    def _pod_grace(
        self, rt: ResourceType, pod: dict[str, Any], requested: int | None
    ) -> int | None:
        """Grace period for a pod: only a pod with a running container on a node shuts down
        gracefully (the node agent stops it, then deletes with grace 0); an unbound pod or one
        with nothing running goes at once, since there is no process to stop."""
        if rt.key != ("", "pods"):
            return None
        if not (pod.get("spec") or {}).get("nodeName"):
            return None
        status = pod.get("status") or {}
        statuses = (status.get("containerStatuses") or []) + (
            status.get("initContainerStatuses") or []
        )
        if not any("running" in (cs.get("state") or {}) for cs in statuses):
            return None
        if requested is not None:
            return max(requested, 0)
        return int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))

    # ----------------------------------------------------------------------- commit
    def _index_remove(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        md = obj["metadata"]
        key = (md.get("namespace", ""), md["name"])
        index = self._labels[rt.key]
        for kv in _index_terms(rt, obj):
            names = index.get(kv)
            if names is not None:
                names.discard(key)
                if not names:
                    del index[kv]
        for uid in {str(r.get("uid")) for r in md.get("ownerReferences") or []}:
            deps = self._dependents.get(uid)
            if deps is not None:
                deps.discard((rt.key, *key))
                if not deps:
                    del self._dependents[uid]

    def _index_add(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        md = obj["metadata"]
        key = (md.get("namespace", ""), md["name"])
        index = self._labels[rt.key]
        for kv in _index_terms(rt, obj):
            index.setdefault(kv, set()).add(key)
        for ref in md.get("ownerReferences") or []:
            if ref.get("uid"):
                self._dependents.setdefault(ref["uid"], set()).add((rt.key, *key))
        self._uids[md["uid"]] = (rt.key, *key)

    def _commit(
        self, rt: ResourceType, kind: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        self._rv += 1
        md = obj["metadata"]
        md["resourceVersion"] = str(self._rv)
        ns, name = md.get("namespace", ""), md["name"]
        if old is not None:
            self._index_remove(rt, old)
        self._data[rt.key].setdefault(ns, {})[name] = obj
        self._index_add(rt, obj)
        self._emit(WatchEvent(kind, rt, obj, old, self._rv))

    def _remove(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        md = obj["metadata"]
        ns, name = md.get("namespace", ""), md["name"]
        cur = self._data[rt.key].get(ns, {}).pop(name, None)
        if cur is None:
            return
        if not self._data[rt.key][ns]:
            del self._data[rt.key][ns]
        self._index_remove(rt, cur)
        self._uids.pop(cur["metadata"]["uid"], None)
        self._rv += 1
        gone = clone(cur)
        gone["metadata"]["resourceVersion"] = str(self._rv)
        self._emit(WatchEvent("DELETED", rt, gone, cur, self._rv))

    def _emit(self, ev: WatchEvent) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        self._history.append(ev)
        for fn in self._listeners:
            try:
                fn(ev)
            except Exception:  # one bad listener must not lose the event for the others
                log.exception("store listener %r failed on %s", fn, ev.type)
        for w in self._watchers.get(ev.rt.key, ()):
            seen = w.translate(ev)
            if seen is not None:
                w.push(seen)

    def add_listener(self, fn: Callable[[WatchEvent], None]) -> None:
        """Call ``fn`` after every commit, under the store lock: it must only enqueue."""
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[WatchEvent], None]) -> None:
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    # ------------------------------------------------------------------------ watch
    def watch(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        resource_version: str | None = None,
    ) -> Watch:
        """Start a watch. Without a resourceVersion (or "0") it first yields ADDED for every
        current object; with one it replays the retained history after it, or raises 410."""
        rt = self.resolve(resource)
        labels, fields = _selectors(rt, label_selector, field_selector)
        loop = asyncio.get_running_loop()
        w = _Watcher(rt, namespace if rt.namespaced else None, labels, fields, loop)
        with self._lock:
            initial: list[WatchEvent] = []
            if resource_version in (None, "", "0"):
                for obj in self._candidates(rt, w.namespace, labels, fields):
                    if w.selects(obj):
                        initial.append(
                            WatchEvent(
                                "ADDED", rt, obj, None, int(obj["metadata"]["resourceVersion"])
                            )
                        )
                initial.sort(key=lambda e: _name_key(e.obj))
            else:
                try:
                    since = int(resource_version)
                except ValueError as exc:
                    raise errors.bad_request(
                        f"invalid resource version {resource_version!r}"
                    ) from exc
                if since < self._compacted:
                    raise errors.gone(f"too old resource version: {since} ({self._compacted + 1})")
                for ev in self._history:
                    if ev.rv > since and ev.rt.key == rt.key:
                        seen = w.translate(ev)
                        if seen is not None:
                            initial.append(seen)
            for ev in initial:
                w.queue.put_nowait(ev)
            self._watchers.setdefault(rt.key, set()).add(w)
            start_rv = self._rv
        return Watch(self, w, start_rv)

    def _bookmark(self, w: _Watcher, initial_events_end: bool) -> None:
        with self._lock:
            md: dict[str, Any] = {"resourceVersion": str(self._rv)}
            if initial_events_end:
                md["annotations"] = {"k8s.io/initial-events-end": "true"}
            # Queued behind every event already handed to this watcher, so the bookmark's
            # version never runs ahead of what the client has received.
            w.push(WatchEvent("BOOKMARK", w.rt, {"metadata": md}, None, self._rv))

    def _unwatch(self, w: _Watcher) -> None:
        with self._lock:
            ws = self._watchers.get(w.rt.key)
            if ws is not None:
                ws.discard(w)


_PODS = ("", "pods")
# Pods are also indexed by node (what the node agent and kubectl describe node list by), as a
# pseudo-label no real label key can collide with.
_NODE_TERM = "\x00spec.nodeName"


def _index_terms(rt: ResourceType, obj: dict[str, Any]) -> list[tuple[str, str]]:
    terms = list((obj["metadata"].get("labels") or {}).items())
    if rt.key == _PODS:
        terms.append((_NODE_TERM, str((obj.get("spec") or {}).get("nodeName") or "")))
    return terms


def _spec_changed(rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether ``generation`` must move: spec-ish fields changed (status too when there is no
    status subresource); metadata never counts."""
    skip = {"metadata", "apiVersion", "kind"}
    if rt.status_subresource:
        skip.add("status")
    keys = (set(old) | set(new)) - skip
    return any(old.get(k) != new.get(k) for k in keys)


def _check_metadata(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Shape checks on the metadata the store itself indexes, so no malformed object can reach
    the indexes (ObjectMeta validation, as every registry runs it)."""
    md = obj["metadata"]
    causes: list[tuple[str, str, str]] = []
    for key in ("labels", "annotations"):
        value = md.get(key)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            causes.append(
                ("FieldValueInvalid", f"metadata.{key}", "Invalid value: must be a map of strings")
            )
    fins = md.get("finalizers")
    if fins is not None and (
        not isinstance(fins, list) or not all(isinstance(f, str) for f in fins)
    ):
        causes.append(
            ("FieldValueInvalid", "metadata.finalizers", "Invalid value: must be a list of strings")
        )
    refs = md.get("ownerReferences")
    if refs is not None:
        if not isinstance(refs, list):
            causes.append(
                ("FieldValueInvalid", "metadata.ownerReferences", "Invalid value: must be a list")
            )
        else:
            for i, ref in enumerate(refs):
                for field_name in ("apiVersion", "kind", "name", "uid"):
                    if (
                        not isinstance(ref, dict)
                        or not isinstance(ref.get(field_name), str)
                        or not ref.get(field_name)
                    ):
                        causes.append(
                            (
                                "FieldValueRequired",
                                f"metadata.ownerReferences[{i}].{field_name}",
                                "Required value",
                            )
                        )
    if causes:
        raise errors.invalid(rt.kind, rt.group, str(md.get("name", "")), causes)


def _selectors(
    rt: ResourceType,
    label_selector: str | LabelSelector | None,
    field_selector: str | FieldSelector | None,
) -> tuple[LabelSelector, FieldSelector]:
    """Selectors given as strings (HTTP) or parsed already (in-process callers), parsed once
    for lists and watches alike; field selectors are checked against ``rt``'s kind."""
    labels = (
        label_selector
        if isinstance(label_selector, LabelSelector)
        else LabelSelector.parse(label_selector)
    )
    fields = (
        field_selector
        if isinstance(field_selector, FieldSelector)
        else FieldSelector.parse(field_selector, rt.kind)
    )
    return labels, fields


def _check_resource_version(
    rt: ResourceType, name: str, old: dict[str, Any], new: dict[str, Any]
) -> None:
    """Optimistic concurrency for PUT and PATCH: a write that names a resourceVersion other
    than the stored one is a 409 Conflict, worded as the API server words it."""
    rv = new["metadata"].get("resourceVersion")
    if rv and rv != old["metadata"]["resourceVersion"]:
        raise errors.conflict(
            rt.plural,
            rt.group,
            name,
            "the object has been modified; please apply your changes to the latest "
            "version and try again",
        )
