"""Garbage collection and namespace lifecycle, as kube-controller-manager does them.

* Background: when an owner is gone, dependents whose every owner (by uid) is gone are deleted.
  A dependent created after its owner vanished is deleted too.
* Foreground: an owner holding the ``foregroundDeletion`` finalizer has its dependents deleted;
  the finalizer is released once no dependent with ``blockOwnerDeletion: true`` remains.
* Orphan: the ``orphan`` finalizer makes the collector strip the owner's reference from every
  dependent, then release the finalizer.
* Namespaces: a new namespace gets its ``default`` ServiceAccount; a terminating one has all
  its content deleted, then its ``kubernetes`` finalizer is released and it goes away.
"""

from __future__ import annotations

import contextlib
from typing import Any

from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.meta import owner_uids
from elastrain_sandbox.apiserver.resources import ResourceType
from elastrain_sandbox.apiserver.store import Store, WatchEvent
from elastrain_sandbox.controllers.base import Controller

NS_KEY = ("", "namespaces")


class GarbageCollector(Controller):
    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.keys = frozenset()  # every resource: see _on_event

    def _on_event(self, ev: WatchEvent) -> None:
        md = ev.obj["metadata"]
        interesting = (
            ev.type == "DELETED"
            or md.get("ownerReferences")
            or (
                md.get("deletionTimestamp")
                and ({"foregroundDeletion", "orphan"} & set(md.get("finalizers") or []))
            )
            or (ev.rt.key == NS_KEY and (md.get("deletionTimestamp") or ev.type == "ADDED"))
            or (md.get("namespace") and ev.type == "DELETED")
        )
        if interesting and self._loop is not None and self._queue is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._queue.put_nowait, ev)

    async def handle(self, ev: WatchEvent) -> None:
        obj, md = ev.obj, ev.obj["metadata"]
        if ev.type == "DELETED":
            self._collect_dependents(md["uid"])
            for uid in owner_uids(obj):
                self._maybe_release_foreground(uid)
            ns = md.get("namespace")
            if ns:
                self._maybe_finish_namespace(ns)
            return
        if ev.rt.key == NS_KEY and ev.type == "ADDED":
            # The service-account controller's part: every namespace has a "default" SA.
            with contextlib.suppress(ApiError):
                self.store.create("serviceaccounts", {"metadata": {"name": "default"}}, md["name"])
        if md.get("ownerReferences") and not md.get("deletionTimestamp"):
            uids = owner_uids(obj)
            if uids and all(not self.store.uid_exists(u) for u in uids):
                self._delete(ev.rt, obj, "Background")
        fins = set(md.get("finalizers") or [])
        if md.get("deletionTimestamp"):
            if "orphan" in fins:
                self._orphan(ev.rt, obj)
            if "foregroundDeletion" in fins:
                for rt, dep in self.store.dependents(md["uid"]):
                    if not dep["metadata"].get("deletionTimestamp"):
                        self._delete(rt, dep, "Background")
                self._maybe_release_foreground(md["uid"])
            if ev.rt.key == NS_KEY:
                self._empty_namespace(md["name"])

    def _delete(self, rt: ResourceType, obj: dict[str, Any], policy: str) -> None:
        md = obj["metadata"]
        with contextlib.suppress(ApiError):  # already gone or replaced by a namesake
            self.store.delete(
                rt,
                md["name"],
                md.get("namespace"),
                propagation_policy=policy,
                preconditions={"uid": md["uid"]},
            )

    def _collect_dependents(self, owner_uid: str) -> None:
        for rt, dep in self.store.dependents(owner_uid):
            if dep["metadata"].get("deletionTimestamp"):
                continue
            others = [u for u in owner_uids(dep) if u != owner_uid]
            if all(not self.store.uid_exists(u) for u in others):
                self._delete(rt, dep, "Background")

    def _maybe_release_foreground(self, owner_uid: str) -> None:
        found = self.store.locate(owner_uid)
        if found is None:
            return
        rt, owner = found
        if "foregroundDeletion" not in (owner["metadata"].get("finalizers") or []):
            return
        for _rt, dep in self.store.dependents(owner_uid):
            for ref in dep["metadata"].get("ownerReferences") or []:
                if ref.get("uid") == owner_uid and ref.get("blockOwnerDeletion"):
                    return
        self._drop_finalizer(rt, owner, "foregroundDeletion")

    def _drop_finalizer(self, rt: ResourceType, obj: dict[str, Any], finalizer: str) -> None:
        md = obj["metadata"]
        with contextlib.suppress(ApiError):
            self.store.patch(
                rt,
                md["name"],
                [
                    {"op": "test", "path": "/metadata/uid", "value": md["uid"]},
                    {
                        "op": "replace",
                        "path": "/metadata/finalizers",
                        "value": [f for f in md.get("finalizers") or [] if f != finalizer],
                    },
                ],
                "application/json-patch+json",
                namespace=md.get("namespace"),
            )

    def _orphan(self, rt: ResourceType, owner: dict[str, Any]) -> None:
        uid = owner["metadata"]["uid"]
        for dep_rt, dep in self.store.dependents(uid):
            refs = [r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            with contextlib.suppress(ApiError):
                self.store.patch(
                    dep_rt,
                    dep["metadata"]["name"],
                    {"metadata": {"ownerReferences": refs or None}},
                    namespace=dep["metadata"].get("namespace"),
                )
        self._drop_finalizer(rt, self.store.get_by_uid(uid) or owner, "orphan")

    def _empty_namespace(self, ns: str) -> None:
        for rt in self.store.resource_types():
            if not rt.namespaced:
                continue
            for obj in self.store.list(rt, ns).items:
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete(rt, obj, "Background")
        self._maybe_finish_namespace(ns)

    def _maybe_finish_namespace(self, ns: str) -> None:
        try:
            nso = self.store.get("namespaces", ns)
        except ApiError:
            return
        if not nso["metadata"].get("deletionTimestamp"):
            return
        for rt in self.store.resource_types():
            if rt.namespaced and self.store.list(rt, ns, limit=1, copy=False).items:
                return
        with contextlib.suppress(ApiError):
            self.store.patch("namespaces", ns, {"spec": {"finalizers": None}})
