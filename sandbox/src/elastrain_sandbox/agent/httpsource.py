"""``HttpSource``: the agent's cluster over HTTP (the real kube-apiserver, or the embedded one).

What it follows, as a kubelet does:

* Nodes (every Node; the agent keeps those it serves);
* for each served node, its pods (``fieldSelector=spec.nodeName=<node>``): these are the pods
  the agent acts on;
* for each namespace it hosts a pod in, that namespace's pods (``peers``) and Services, for the
  hosts files (there is no DNS), and its ConfigMaps and Secrets, for env and volumes. The first
  pod of a namespace is handed to the agent only once those caches are filled, so its first
  start sees the objects it refers to. Namespaces, once followed, stay followed.

Reads come from those caches; writes are requests, awaited on the loop (never blocking it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection
from pathlib import Path

from elastrain_sandbox.agent.apiaccess import IssuedToken
from elastrain_sandbox.agent.informer import Handler, Informer
from elastrain_sandbox.agent.kubeclient import MERGE_PATCH, KubeClient, KubeConfig
from elastrain_sandbox.agent.source import Emit, Obj, SourceError, SourceEvent

log = logging.getLogger(__name__)

NAMESPACE_SYNC_TIMEOUT = 30.0
_ORDER = {"nodes": 0, "pods": 1}


def _pods(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods"


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class HttpSource:
    """A :class:`~elastrain_sandbox.agent.source.ClusterSource` over HTTP.

    ``nodes``: the node names whose pods to follow (``watch_node`` adds more later); None
    follows every bound pod (``spec.nodeName!=``).
    """

    def __init__(self, client: KubeClient | Path, nodes: Collection[str] | None = None) -> None:
        if not isinstance(client, KubeClient):
            client = KubeClient(KubeConfig.load(client))
        self.client = client
        self._wanted = None if nodes is None else list(nodes)
        self._emit: Emit | None = None
        self._initial: list[SourceEvent] | None = None
        self._nodes: Informer | None = None
        self._node_pods: dict[str, Informer] = {}
        self._namespaces: dict[str, dict[str, Informer]] = {}
        self._ns_ready: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._events: dict[tuple[str, str, str, str], tuple[str, int]] = {}

    # -- following -------------------------------------------------------------------------

    async def start(self, emit: Emit) -> list[SourceEvent]:
        self._initial = []
        self._nodes = Informer(self.client, "/api/v1/nodes", self._on("nodes"))
        self._nodes.start()
        if self._wanted is None:
            self._follow_pods("", "spec.nodeName!=")
        for node in self._wanted or []:
            self.watch_node(node)
        informers = [self._nodes, *self._node_pods.values()]
        await asyncio.gather(*(i.synced.wait() for i in informers))
        initial = sorted(self._initial, key=lambda ev: _ORDER.get(ev.kind, 2))
        self._initial = None
        self._emit = emit
        return initial

    async def stop(self) -> None:
        self._emit = None
        informers = [self._nodes, *self._node_pods.values()]
        informers += [i for group in self._namespaces.values() for i in group.values()]
        for informer in informers:
            if informer is not None:
                await informer.stop()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.client.shutdown()

    def watch_node(self, node: str) -> Informer:
        """Follow the pods of ``node`` (a node added after start); its informer."""
        if node not in self._node_pods:
            self._follow_pods(node, f"spec.nodeName={node}")
        return self._node_pods[node]

    async def unwatch_node(self, node: str) -> None:
        """Stop following the pods of ``node`` (the machine is gone)."""
        informer = self._node_pods.pop(node, None)
        if informer is not None:
            await informer.stop()

    def _follow_pods(self, node: str, selector: str) -> None:
        informer = Informer(self.client, "/api/v1/pods", self._on_node_pod, field_selector=selector)
        self._node_pods[node] = informer
        informer.start()

    def _on(self, kind: str) -> Handler:
        async def handler(type_: str, obj: Obj, old: Obj | None) -> None:
            self._deliver(SourceEvent(kind, type_, obj, old))

        return handler

    async def _on_node_pod(self, type_: str, obj: Obj, old: Obj | None) -> None:
        namespace = str(obj["metadata"].get("namespace") or "default")
        if type_ != "DELETED":
            await self._follow_namespace(namespace)
        self._deliver(SourceEvent("pods", type_, obj, old))
        if type_ == "DELETED" and not self._hosts_pods_in(namespace):
            await self._unfollow_namespace(namespace)

    def followed_namespaces(self) -> list[str]:
        """The namespaces whose pods, Services, ConfigMaps and Secrets are being watched."""
        return sorted(self._namespaces)

    def _hosts_pods_in(self, namespace: str) -> bool:
        return any(
            p["metadata"].get("namespace") == namespace
            for informer in self._node_pods.values()
            for p in informer.items()
        )

    async def _unfollow_namespace(self, namespace: str) -> None:
        """Stop the watches of a namespace none of this agent's pods is in any more: each holds
        a connection, and a long-lived agent sees many namespaces come and go (a test session
        creates one per test); kept, they once exhausted the connection pool."""
        self._ns_ready.pop(namespace, None)
        group = self._namespaces.pop(namespace, None)
        for informer in (group or {}).values():
            await informer.stop()

    async def _follow_namespace(self, namespace: str) -> None:
        ready = self._ns_ready.get(namespace)
        if ready is None:
            ready = self._ns_ready[namespace] = asyncio.Event()
            base = f"/api/v1/namespaces/{namespace}"
            group = {
                "pods": Informer(self.client, _pods(namespace), self._on("peers")),
                "services": Informer(self.client, f"{base}/services", self._on("services")),
                "configmaps": Informer(self.client, f"{base}/configmaps"),
                "secrets": Informer(self.client, f"{base}/secrets"),
            }
            self._namespaces[namespace] = group
            for informer in group.values():
                informer.start()
            waits = asyncio.gather(*(i.synced.wait() for i in group.values()))
            try:
                await asyncio.wait_for(waits, NAMESPACE_SYNC_TIMEOUT)
            except TimeoutError:
                log.warning("namespace %s: caches not filled in time; going on", namespace)
            ready.set()
        await ready.wait()

    def _deliver(self, ev: SourceEvent) -> None:
        if self._emit is not None:
            self._emit(ev)
        elif self._initial is not None:
            self._initial.append(ev)

    # -- reads -----------------------------------------------------------------------------

    def node(self, name: str) -> Obj | None:
        """The Node as last seen (not part of ``ClusterSource``: the kubelet's own read)."""
        return self._nodes.get("", name) if self._nodes is not None else None

    def namespace_pods(self, namespace: str) -> list[Obj]:
        group = self._namespaces.get(namespace)
        if group is not None and group["pods"].synced.is_set():
            return group["pods"].items()
        return [
            p
            for informer in self._node_pods.values()
            for p in informer.items()
            if p["metadata"].get("namespace") == namespace
        ]

    def node_pods(self, node: str) -> list[Obj]:
        informer = self._node_pods.get(node) or self._node_pods.get("")
        if informer is None:
            return []
        return [p for p in informer.items() if (p.get("spec") or {}).get("nodeName") == node]

    def services(self, namespace: str) -> list[Obj]:
        group = self._namespaces.get(namespace)
        return group["services"].items() if group is not None else []

    def lookup(self, kind: str, namespace: str, name: str) -> Obj | None:
        plural = {"ConfigMap": "configmaps", "Secret": "secrets", "Pod": "pods"}[kind]
        group = self._namespaces.get(namespace)
        found = group[plural].get(namespace, name) if group is not None else None
        if found is None and kind == "Pod":
            for informer in self._node_pods.values():
                found = found or informer.get(namespace, name)
        return found

    # -- writes ----------------------------------------------------------------------------

    async def fetch_pod(self, namespace: str, name: str) -> Obj | None:
        try:
            return await self.client.get(f"{_pods(namespace)}/{name}")
        except SourceError as exc:
            if exc.code == 404:
                return None
            raise

    async def patch_pod_status(self, namespace: str, name: str, body: Obj) -> None:
        await self.client.request(
            "PATCH", f"{_pods(namespace)}/{name}/status", body, content_type=MERGE_PATCH
        )

    async def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        options = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": uid},
        }
        await self.client.request("DELETE", f"{_pods(namespace)}/{name}", options)

    async def request_token(
        self,
        namespace: str,
        service_account: str,
        *,
        pod_name: str,
        pod_uid: str,
        audiences: list[str],
        expiration_seconds: int,
    ) -> IssuedToken:
        """A service-account token bound to the pod, from the TokenRequest API (what the
        kubelet writes into a ``serviceAccountToken`` projection); see ``agent/apiaccess.py``."""
        spec: Obj = {
            "expirationSeconds": expiration_seconds,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid},
        }
        if audiences:
            spec["audiences"] = audiences
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        out = await self.client.request("POST", path, body)
        status = out.get("status") or {}
        token, expiration = status.get("token"), status.get("expirationTimestamp")
        if not token or not expiration:
            raise SourceError(0, f"POST {path}: no token in the answer")
        return IssuedToken.from_status(str(token), str(expiration))

    def record_event(self, node: str, pod: Obj, type_: str, reason: str, message: str) -> None:
        task = asyncio.create_task(self._event(node, pod, type_, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _event(self, node: str, pod: Obj, type_: str, reason: str, message: str) -> None:
        """Create the Event, or bump the count of an identical one (client-go's aggregation)."""
        meta = pod["metadata"]
        namespace = str(meta.get("namespace") or "default")
        key = (str(meta.get("uid", "")), type_, reason, message)
        now = _rfc3339(time.time())
        base = f"/api/v1/namespaces/{namespace}/events"
        seen = self._events.get(key)
        try:
            if seen is not None:
                name, count = seen
                body = {"count": count + 1, "lastTimestamp": now}
                await self.client.request("PATCH", f"{base}/{name}", body, content_type=MERGE_PATCH)
                self._events[key] = (name, count + 1)
                return
            name = f"{meta['name']}.{time.time_ns():x}"
            event = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "namespace": namespace,
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
                "reason": reason,
                "message": message,
                "source": {"component": "kubelet", "host": node},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "type": type_,
                "reportingComponent": "kubelet",
                "reportingInstance": node,
            }
            await self.client.request("POST", base, event)
            self._events[key] = (name, 1)
        except SourceError as exc:  # events are best effort, as on a kubelet
            self._events.pop(key, None)
            log.debug("event %s on %s/%s not recorded: %s", reason, namespace, meta["name"], exc)
