"""``StoreSource``: the agent's cluster is the embedded server's in-process ``Store``.

Reads and writes are direct store calls (short, lock-protected, no I/O), so the coroutines
here never suspend: the agent behaves exactly as when it called the store itself. Store
listeners run under the store lock on any thread, so they only hand the event to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib

from elastrain_sandbox.agent.source import Emit, Obj, SourceError, SourceEvent
from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.events import EventRecorder
from elastrain_sandbox.apiserver.store import PATCH_MERGE, Store, WatchEvent

_WATCHED = {("", "pods"): "pods", ("", "services"): "services", ("", "nodes"): "nodes"}
_KINDS = {"ConfigMap": "configmaps", "Secret": "secrets", "Pod": "pods"}


class StoreSource:
    """A :class:`~elastrain_sandbox.agent.source.ClusterSource` over a ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._loop: asyncio.AbstractEventLoop | None = None
        self._emit: Emit | None = None
        self._recorders: dict[str, EventRecorder] = {}

    async def start(self, emit: Emit) -> list[SourceEvent]:
        self._loop = asyncio.get_running_loop()
        self._emit = emit
        self.store.add_listener(self._on_event)
        initial = [SourceEvent("nodes", "ADDED", n) for n in self.store.list("nodes").items]
        initial += [SourceEvent("pods", "ADDED", p) for p in self.store.list("pods").items]
        return initial

    async def stop(self) -> None:
        self.store.remove_listener(self._on_event)
        self._emit = None

    def _on_event(self, ev: WatchEvent) -> None:
        """Store listener (under the store lock, any thread): only hand the event over."""
        kind = _WATCHED.get(ev.rt.key)
        if kind is None or self._loop is None or self._emit is None:
            return
        event = SourceEvent(kind, ev.type, ev.obj, ev.old)
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            self._loop.call_soon_threadsafe(self._emit, event)

    # -- reads -----------------------------------------------------------------------------

    def namespace_pods(self, namespace: str) -> list[Obj]:
        return self.store.list("pods", namespace=namespace, copy=False).items

    def node_pods(self, node: str) -> list[Obj]:
        return self.store.list("pods", field_selector=f"spec.nodeName={node}").items

    def services(self, namespace: str) -> list[Obj]:
        return self.store.list("services", namespace=namespace, copy=False).items

    def lookup(self, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            return self.store.get(_KINDS[kind], name, namespace)
        except ApiError:
            return None

    # -- writes ----------------------------------------------------------------------------

    async def fetch_pod(self, namespace: str, name: str) -> Obj | None:
        return self.lookup("Pod", namespace, name)

    async def patch_pod_status(self, namespace: str, name: str, body: Obj) -> None:
        try:
            self.store.patch(
                "pods", name, body, PATCH_MERGE, namespace=namespace, subresource="status"
            )
        except ApiError as exc:
            raise SourceError(exc.code, exc.message) from exc

    async def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        try:
            self.store.delete(
                "pods", name, namespace, grace_period_seconds=0, preconditions={"uid": uid}
            )
        except ApiError as exc:
            raise SourceError(exc.code, exc.message) from exc

    def record_event(self, node: str, pod: Obj, type_: str, reason: str, message: str) -> None:
        if node not in self._recorders:
            self._recorders[node] = EventRecorder(self.store, "kubelet", host=node)
        self._recorders[node].record(pod, type_, reason, message)
