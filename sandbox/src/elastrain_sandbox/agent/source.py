"""The node agent's seam to the API: exactly what a kubelet reads, hears and writes.

Two implementations keep one agent for both control planes:

* :class:`~elastrain_sandbox.agent.storesource.StoreSource` wraps the embedded server's
  in-process ``Store`` (what the embedded runtime and its tests use; no HTTP hop);
* :class:`~elastrain_sandbox.agent.httpsource.HttpSource` talks HTTP from a kubeconfig: list and
  watch informers with a local cache, writes as requests. It serves the real kube-apiserver and
  the embedded server alike.

Event kinds: ``nodes``; ``pods`` (pods bound to a served node: the agent acts on these);
``services``; ``peers`` (other pods of a namespace the agent hosts pods in, which only matter
for hosts files). A source that sees every pod (the store) reports them all as ``pods``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

Obj = dict[str, Any]


@dataclass(frozen=True)
class SourceEvent:
    """One change: ``kind`` (see the module doc), ``type`` (ADDED, MODIFIED, DELETED), the
    object and, where the source knows it, the object as it was before."""

    kind: str
    type: str
    obj: Obj
    old: Obj | None = None


class SourceError(Exception):
    """A refused or failed API call; ``code`` is the HTTP status (0: no answer at all)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Emit = Callable[[SourceEvent], None]


class ClusterSource(Protocol):
    """What :class:`~elastrain_sandbox.agent.agent.NodeAgent` needs from a cluster.

    Reads are synchronous and served from a cache (they sit on the pod's hot paths: hosts
    files, env and volume lookups). Writes are coroutines, so an HTTP round trip never blocks
    the event loop; events on pods are fire-and-forget, as client-go's recorder is.
    """

    async def start(self, emit: Emit) -> list[SourceEvent]:
        """Begin following the cluster. Return the current state as ADDED events (nodes
        first); every later change is handed to ``emit``, on the loop, in order."""
        ...

    async def stop(self) -> None:
        """Stop following (no ``emit`` after this returns)."""
        ...

    def namespace_pods(self, namespace: str) -> list[Obj]:
        """Every pod of ``namespace`` (read-only objects)."""
        ...

    def node_pods(self, node: str) -> list[Obj]:
        """Every pod bound to ``node``."""
        ...

    def services(self, namespace: str) -> list[Obj]:
        """Every Service of ``namespace``."""
        ...

    def lookup(self, kind: str, namespace: str, name: str) -> Obj | None:
        """A ConfigMap, Secret or Pod by name, or None."""
        ...

    async def fetch_pod(self, namespace: str, name: str) -> Obj | None:
        """The pod as the API has it now (not the cache: a status write needs its version)."""
        ...

    async def patch_pod_status(self, namespace: str, name: str, body: Obj) -> None:
        """Merge-patch ``pods/status``; ``SourceError`` 409 if ``body``'s resourceVersion is
        stale (the caller re-reads and retries)."""
        ...

    async def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """The kubelet's final delete: grace 0, only if the pod still has ``uid``."""
        ...

    def record_event(self, node: str, pod: Obj, type_: str, reason: str, message: str) -> None:
        """An Event on ``pod`` from the kubelet of ``node`` (best effort)."""
        ...
