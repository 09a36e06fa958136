"""The node agent: the sandbox's kubelet for every node it serves.

It follows the cluster through a :class:`~elastrain_sandbox.agent.source.ClusterSource` (the
embedded ``Store`` in-process, or any API server over HTTP; events are only enqueued, the work
happens on the agent's loop) and, for each pod bound to a node it serves, runs a
:class:`PodRuntime`, writes the pod's status through the ``pods/status`` subresource (the
kubelet owns pod status), keeps every pod's ``/etc/hosts`` in step with its peers and headless
services, and carries out deletions:
stop the containers within the grace period, write the final status, delete the pod with grace
0 (the kubelet's final delete) and tear the pod sandbox down.

Node semantics, agreed with the control plane's ``NodeLifecycle`` controller:

* a node whose Ready condition is False or Unknown is *partitioned*: its containers keep
  running but the agent neither reports their status nor acts on their API changes, as a
  kubelet cut off from the API server; when Ready again it resynchronises (pods deleted in the
  meantime are killed, deletions carried out, statuses written);
* a deleted Node is a machine gone: its pods' processes are killed at once and their sandboxes
  removed; the API objects are left to pod GC (``NodeLifecycle``), as on a cluster.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Collection, Coroutine, Mapping
from pathlib import Path
from typing import Any

from elastrain_sandbox.agent import hosts, mountpoints
from elastrain_sandbox.agent.apiaccess import SERVICE_HOST, ApiAccess, ApiForwarder, ServiceEndpoint
from elastrain_sandbox.agent.backoff import BackoffPolicy
from elastrain_sandbox.agent.cgroups import MemoryController
from elastrain_sandbox.agent.container import sweep_orphans
from elastrain_sandbox.agent.images import ImageMap
from elastrain_sandbox.agent.instance import InstanceId
from elastrain_sandbox.agent.network import SUBNET_PREFIX, PodNetwork, open_network
from elastrain_sandbox.agent.pod import PodRuntime, RuntimeConfig
from elastrain_sandbox.agent.source import ClusterSource, SourceError, SourceEvent
from elastrain_sandbox.agent.storesource import StoreSource
from elastrain_sandbox.agent.usage import Running
from elastrain_sandbox.apiserver.store import Store

log = logging.getLogger(__name__)

Obj = dict[str, Any]

# The most of the agent's time that rewriting hosts files may take. A pass rewrites every local
# pod's file of each changed namespace, and each file lists the whole namespace, so at hundreds
# of pods a pass costs tenths of a second; passes back to back would starve the pods' status
# writes (and, in the embedded cluster, the API server on the same loop). Bursts of changes
# wait for the next pass instead: in a small namespace a few milliseconds, at 400 pods under a
# second, which is still fresher than kube-dns's cached answers.
HOSTS_SHARE = 0.2


def _node_reachable(node: Mapping[str, Any]) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return True


def _hosts_signature(pod: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """The parts of a pod that other pods' hosts files depend on."""
    if pod is None:
        return None
    status = pod.get("status") or {}
    ready = [c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    spec = pod.get("spec") or {}
    meta = pod["metadata"]
    return (
        status.get("podIP"),
        status.get("phase"),
        tuple(ready),
        tuple(sorted((meta.get("labels") or {}).items())),
        spec.get("hostname"),
        spec.get("subdomain"),
        bool(meta.get("deletionTimestamp")),
    )


class NodeAgent:
    """Runs the pods of the sandbox's nodes; construct, ``await start()``, ``await stop()``.

    ``source`` is the cluster: a ``Store`` (wrapped in a ``StoreSource``) or any
    ``ClusterSource`` (``HttpSource`` for an API server over HTTP).
    ``nodes`` limits the agent to those node names (default: every Node it sees).
    ``backoff`` sets the crash-loop back-off (tests use a small base). ``isolate=False`` keeps
    pods in the host network even as root. ``shutdown_grace`` is the SIGTERM grace given to
    containers when the agent itself stops. ``api_access`` (the real control plane) lets pods
    reach the API server and gives them bound service-account tokens (``agent/apiaccess.py``).
    """

    def __init__(
        self,
        source: Store | ClusterSource,
        state_dir: Path,
        *,
        nodes: Collection[str] | None = None,
        backoff: BackoffPolicy | None = None,
        isolate: bool = True,
        images: ImageMap | None = None,
        shutdown_grace: float = 2.0,
        api_access: ApiAccess | None = None,
    ) -> None:
        self.source: ClusterSource = StoreSource(source) if isinstance(source, Store) else source
        self.state_dir = Path(state_dir)
        self._only = set(nodes) if nodes is not None else None
        self._backoff = backoff or BackoffPolicy()
        self._isolate = isolate
        self._images = images or ImageMap.default()
        self._shutdown_grace = shutdown_grace
        self._api_access = api_access
        self._forwarder: ApiForwarder | None = None
        self.service: ServiceEndpoint | None = None
        self.network: PodNetwork | None = None
        self._config: RuntimeConfig | None = None
        self._runtimes: dict[str, PodRuntime] = {}
        self._terminating: dict[str, asyncio.Task[None]] = {}
        self._nodes: dict[str, bool] = {}  # served node name -> reachable
        self._cut: set[str] = set()  # nodes cut off from the API by the agent's own choice
        self._dirty_status: set[str] = set()
        self._dirty_hosts: set[str] = set()
        self._hosts_next = 0.0  # time.monotonic() at which the next hosts pass may start
        self._hosts_timer: asyncio.TimerHandle | None = None
        self._last_status: dict[str, Obj] = {}
        self._queue: asyncio.Queue[SourceEvent] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()

    @property
    def host_ip(self) -> str:
        """The nodes' address as pods see it (``status.hostIP``)."""
        assert self.network is not None, "start() first"
        return self.network.host_ip

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the pod network, then follow the cluster from its current state."""
        self._loop = asyncio.get_running_loop()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        instance = InstanceId.new()
        orphans = await asyncio.to_thread(sweep_orphans)
        if orphans:
            log.warning("killed %d container processes left by dead sandbox agents", len(orphans))
        stale = await asyncio.to_thread(mountpoints.sweep_stale)
        if stale:
            log.info("removed mount points left by dead sandbox agents: %s", stale)
        memory = MemoryController.detect()
        if memory is not None:
            await asyncio.to_thread(memory.sweep)
        self.network = await asyncio.to_thread(open_network, instance, isolate=self._isolate)
        atexit.register(self._at_exit)
        if self._api_access is not None:
            self.service = await self._open_api_relay(self._api_access)
        self._config = RuntimeConfig(
            owner=instance.tag,
            memory=memory,
            state_dir=self.state_dir,
            network=self.network,
            images=self._images,
            backoff=self._backoff,
            namespaces=self.network.isolated or os.geteuid() == 0,
            lookup=self._lookup,
            hosts_provider=self._hosts_for,
            service=self.service,
            tokens=self._api_access.tokens if self._api_access is not None else None,
        )
        for ev in await self.source.start(self._queue.put_nowait):
            self._dispatch(ev)
        self._tasks = [
            asyncio.create_task(self._event_loop(), name="agent events"),
            asyncio.create_task(self._sync_loop(), name="agent sync"),
        ]

    async def stop(self) -> None:
        """Stop every container (short grace), remove every pod sandbox, the mount points
        created for them and the network."""
        await self.source.stop()
        if self._hosts_timer is not None:
            self._hosts_timer.cancel()
            self._hosts_timer = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        runtimes = list(self._runtimes.values())
        await asyncio.gather(*(self._safe_stop(rt, self._shutdown_grace) for rt in runtimes))
        for task in list(self._terminating.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.gather(*(rt.teardown() for rt in runtimes), return_exceptions=True)
        self._runtimes.clear()
        if self._forwarder is not None:
            await self._forwarder.stop()
        atexit.unregister(self._at_exit)
        if self._config is not None:  # anything a failed teardown still holds
            await asyncio.to_thread(mountpoints.release_owner, self._config.owner)
        if self.network is not None:
            await asyncio.to_thread(self.network.close)

    async def _open_api_relay(self, access: ApiAccess) -> ServiceEndpoint:
        """Where pods find the API server: a relay on the bridge address (own network
        namespaces), else the server's loopback address itself (host network)."""
        assert self.network is not None
        if not self.network.isolated:
            return ServiceEndpoint(*access.upstream)
        host_ip = self.network.host_ip
        allowed = ipaddress.ip_interface(f"{host_ip}/{SUBNET_PREFIX}").network
        self._forwarder = ApiForwarder(host_ip, access.upstream, allowed)
        port = await self._forwarder.start()
        return ServiceEndpoint(SERVICE_HOST, port, host_ip)

    def _at_exit(self) -> None:
        """The interpreter is exiting without :meth:`stop`: leave no process or netns behind."""
        for rt in list(self._runtimes.values()):
            with contextlib.suppress(Exception):
                rt.kill_now()
        if self._config is not None:
            with contextlib.suppress(Exception):
                mountpoints.release_owner(self._config.owner)
        if self.network is not None:
            with contextlib.suppress(Exception):
                self.network.close()

    @staticmethod
    async def _safe_stop(rt: PodRuntime, grace: float) -> None:
        try:
            await rt.stop(grace)
        except Exception:
            log.exception("pod %s/%s: stop failed", rt.namespace, rt.name)

    def node_reachable(self, name: str) -> bool | None:
        """Whether the agent currently talks to the API for node ``name`` (None: not served).

        The agent learns of a partition from the cluster asynchronously; this is how a test
        knows the partition has taken effect before it acts on the node's pods.
        """
        return self._nodes.get(name)

    def running(self) -> list[Running]:
        """Every container with a live process, by node (the resource-metrics endpoint)."""
        found = []
        for rt in self._runtimes.values():
            node = self._node_of(rt)
            if node is None:
                continue
            for name, cid, since in rt.running_containers():
                found.append(Running(node, rt.namespace, rt.name, name, cid, since))
        return found

    def serve(self, name: str) -> None:
        """Serve node ``name`` too (a node this agent registered after it started)."""
        if self._only is not None:
            self._only.add(name)

    def machine_gone(self, name: str) -> None:
        """Node ``name``'s machine is gone: kill its pods at once and stop serving it. The API
        objects are left to the control plane, as when a Node is deleted."""
        if self._only is not None:
            self._only.discard(name)
        self._cut.discard(name)
        self._node_event("DELETED", {"metadata": {"name": name}}, force=True)

    def cut_off(self, name: str, cut: bool) -> None:
        """Cut node ``name`` off from the API (``cut``), or reconnect it.

        A cut-off node is partitioned whatever its Node object says: its containers keep
        running, but the agent neither reports nor acts for it (the real control plane's
        partition drill, where the agent itself stops renewing the node's lease). Reconnecting
        takes effect once the Node reads Ready again.
        """
        if cut:
            self._cut.add(name)
            if name in self._nodes:
                self._nodes[name] = False
        else:
            self._cut.discard(name)

    def exec_argv(
        self, namespace: str, pod: str, container: str, command: list[str]
    ) -> tuple[list[str], dict[str, str]]:
        """argv and env that run ``command`` inside a running container, for ``pods/exec``.

        Raises ``LookupError`` when the pod is not on this agent or the container is not
        running (the API server answers that with a 400, as for a kubelet).
        """
        for rt in self._runtimes.values():
            if rt.namespace == namespace and rt.name == pod and not rt.stopped:
                return rt.exec_argv(container, command)
        raise LookupError(f"pod {namespace}/{pod} is not running on this sandbox's nodes")

    # -- cluster events --------------------------------------------------------------------

    async def _event_loop(self) -> None:
        while True:
            ev = await self._queue.get()
            try:
                self._dispatch(ev)
                self._wake.set()
            except Exception:  # the agent outlives one bad event
                log.exception("agent failed on %s %s", ev.type, ev.obj["metadata"].get("name"))

    def _dispatch(self, ev: SourceEvent) -> None:
        if ev.kind == "pods":
            self._pod_event(ev.type, ev.obj, ev.old)
        elif ev.kind == "nodes":
            self._node_event(ev.type, ev.obj)
        elif ev.kind == "peers":
            new = ev.obj if ev.type != "DELETED" else None
            if ev.old is None or _hosts_signature(new) != _hosts_signature(ev.old):
                self._dirty_hosts.add(ev.obj["metadata"].get("namespace", "default"))
        else:
            self._dirty_hosts.add(ev.obj["metadata"].get("namespace", "default"))

    def _serves(self, node: str | None) -> bool:
        return node is not None and node in self._nodes

    def _node_event(self, kind: str, node: Mapping[str, Any], *, force: bool = False) -> None:
        name = str(node["metadata"]["name"])
        if self._only is not None and name not in self._only and not force:
            return
        if kind == "DELETED":
            self._nodes.pop(name, None)
            for uid, rt in list(self._runtimes.items()):
                if rt.pod.get("spec", {}).get("nodeName") == name:
                    self._start_termination(uid, grace=0, delete=False)
            return
        reachable = _node_reachable(node) and name not in self._cut
        was = self._nodes.get(name)
        self._nodes[name] = reachable
        if reachable and was is not True:
            self._resync_node(name)

    def _resync_node(self, node: str) -> None:
        """Catch up with the API after a node (re)joins: start, stop and report everything."""
        current = {str(p["metadata"]["uid"]): p for p in self.source.node_pods(node)}
        for uid, rt in list(self._runtimes.items()):
            if rt.pod.get("spec", {}).get("nodeName") == node and uid not in current:
                self._start_termination(uid, grace=0, delete=False)
        for pod in current.values():
            self._pod_event("MODIFIED", pod, None)
        self._dirty_status.update(
            u for u, rt in self._runtimes.items() if self._node_of(rt) == node
        )

    @staticmethod
    def _node_of(rt: PodRuntime) -> str | None:
        node = rt.pod.get("spec", {}).get("nodeName")
        return str(node) if node else None

    def _pod_event(self, kind: str, pod: Obj, old: Obj | None) -> None:
        meta = pod["metadata"]
        namespace = str(meta.get("namespace", "default"))
        if _hosts_signature(pod if kind != "DELETED" else None) != _hosts_signature(old):
            self._dirty_hosts.add(namespace)
        node = (pod.get("spec") or {}).get("nodeName")
        if not self._serves(node) or not self._nodes.get(str(node)):
            return  # not ours, or partitioned: a cut-off kubelet sees nothing
        uid = str(meta["uid"])
        rt = self._runtimes.get(uid)
        if kind == "DELETED":
            if rt is not None:  # force-deleted: kill at once, nothing left to delete
                self._start_termination(uid, grace=0, delete=False)
            return
        if meta.get("deletionTimestamp"):
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            if rt is None:
                self._spawn(self._final_delete(pod))
            else:
                self._start_termination(uid, grace=grace, delete=True)
            return
        if rt is not None:
            rt.pod = pod  # fresh labels/annotations for the downward API of later restarts
        elif (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            self._admit(pod)

    def _admit(self, pod: Obj) -> None:
        assert self._config is not None
        uid = str(pod["metadata"]["uid"])
        rt = PodRuntime(
            pod,
            self._config,
            lambda: self._mark_status(uid),
            lambda kind, reason, message: self._record(uid, kind, reason, message),
        )
        self._runtimes[uid] = rt
        rt.start()
        self._mark_status(uid)

    def _record(self, uid: str, kind: str, reason: str, message: str) -> None:
        """A kubelet event on the pod (not while its node is partitioned: nobody hears it)."""
        rt = self._runtimes.get(uid)
        node = self._node_of(rt) if rt is not None else None
        if rt is None or node is None or not self._nodes.get(node):
            return
        pod = {"kind": "Pod", "apiVersion": "v1", **rt.pod}
        self.source.record_event(node, pod, kind, reason, message)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background (kept referenced until done)."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _mark_status(self, uid: str) -> None:
        self._dirty_status.add(uid)
        rt = self._runtimes.get(uid)
        if rt is not None:
            self._dirty_hosts.add(rt.namespace)
        self._wake.set()

    # -- termination -----------------------------------------------------------------------

    def _start_termination(self, uid: str, grace: float, delete: bool) -> None:
        """Stop ``uid``'s containers; a shorter grace than one in progress takes over."""
        rt = self._runtimes.get(uid)
        if rt is None:
            return
        if uid in self._terminating:
            if grace < rt.grace and rt.has_running_containers:  # e.g. `delete --force`
                self._spawn(self._safe_stop(rt, grace))
            return
        self._terminating[uid] = asyncio.create_task(
            self._terminate(rt, grace, delete), name=f"terminate {rt.namespace}/{rt.name}"
        )

    async def _terminate(self, rt: PodRuntime, grace: float, delete: bool) -> None:
        try:
            await rt.stop(grace)
            if delete and self._nodes.get(self._node_of(rt) or ""):
                # The kubelet's order: the final status (exit codes, terminal phase) first, so
                # watchers see how the pod ended in its DELETED event; then the final delete.
                await self._write_status(rt)
                await self._final_delete(rt.pod)
            await rt.teardown()
        except Exception:
            log.exception("pod %s/%s: termination failed", rt.namespace, rt.name)
        finally:
            self._runtimes.pop(rt.uid, None)
            self._terminating.pop(rt.uid, None)
            self._last_status.pop(rt.uid, None)
            self._dirty_hosts.add(rt.namespace)
            self._wake.set()

    async def _final_delete(self, pod: Mapping[str, Any]) -> None:
        """The kubelet's last word on a pod: delete it with grace 0 (uid-guarded)."""
        meta = pod["metadata"]
        with contextlib.suppress(SourceError):
            await self.source.delete_pod(
                str(meta.get("namespace") or "default"), str(meta["name"]), str(meta["uid"])
            )

    # -- status and hosts sync -------------------------------------------------------------

    async def _sync_loop(self) -> None:
        """Coalesce bursts of changes into one status write per pod and one hosts pass."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let the burst that woke us finish first
            try:
                await self._flush()
            except Exception:
                log.exception("agent sync failed")

    async def _flush(self) -> None:
        dirty, self._dirty_status = self._dirty_status, set()
        for uid in dirty:
            rt = self._runtimes.get(uid)
            if rt is None:
                continue
            if not self._nodes.get(self._node_of(rt) or ""):
                continue  # partitioned: resync reports it later
            if uid in self._terminating:
                continue  # its last word is the final delete (see _terminate)
            await self._write_status(rt)
        if not self._dirty_hosts:
            return
        started = time.monotonic()
        if started < self._hosts_next:
            if self._hosts_timer is None:
                self._hosts_timer = asyncio.get_running_loop().call_later(
                    self._hosts_next - started, self._hosts_due
                )
            return
        namespaces, self._dirty_hosts = self._dirty_hosts, set()
        for namespace in namespaces:
            self._refresh_namespace(namespace)
        self._hosts_next = started + (time.monotonic() - started) / HOSTS_SHARE

    def _hosts_due(self) -> None:
        self._hosts_timer = None
        self._wake.set()

    async def _write_status(self, rt: PodRuntime) -> None:
        status = rt.status()
        if self._last_status.get(rt.uid) == status:
            return
        for _ in range(5):
            try:
                current = await self.source.fetch_pod(rt.namespace, rt.name)
            except SourceError:
                return
            if current is None or current["metadata"].get("uid") != rt.uid:
                return
            mine = {c["type"] for c in status["conditions"]}
            others = [
                c
                for c in (current.get("status") or {}).get("conditions") or []
                if c.get("type") not in mine
            ]
            body = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "status": {**status, "conditions": others + status["conditions"]},
            }
            try:
                await self.source.patch_pod_status(rt.namespace, rt.name, body)
            except SourceError as exc:
                if exc.code == 409:
                    continue
                log.warning("pod %s/%s: status write failed: %s", rt.namespace, rt.name, exc)
                return
            self._last_status[rt.uid] = status
            return

    def _refresh_namespace(self, namespace: str) -> None:
        runtimes = [rt for rt in self._runtimes.values() if rt.namespace == namespace]
        if not runtimes:
            return
        by_uid, view = self._hosts_view(namespace)
        for rt in runtimes:
            if rt.net is not None and not rt.stopped:
                hosts.write_in_place(
                    rt.dir / "hosts", hosts.render(self._entries(rt, by_uid, view))
                )

    def _namespace_pods(self, namespace: str) -> list[Obj]:
        """The namespace's pods, with IPs of pods whose status write is still pending."""
        pods = []
        for pod in self.source.namespace_pods(namespace):
            rt = self._runtimes.get(str(pod["metadata"].get("uid")))
            if rt is not None and rt.net is not None and not (pod.get("status") or {}).get("podIP"):
                pod = {**pod, "status": {**(pod.get("status") or {}), "podIP": rt.net.ip}}
            pods.append(pod)
        return pods

    def _hosts_view(self, namespace: str) -> tuple[dict[str, Obj], hosts.NamespaceHosts]:
        """The namespace's pods by uid, and its hosts index: built once per hosts pass."""
        pods = self._namespace_pods(namespace)
        view = hosts.NamespaceHosts(namespace, pods, self.source.services(namespace))
        return {str(p["metadata"].get("uid")): p for p in pods}, view

    def _entries(
        self, rt: PodRuntime, by_uid: Mapping[str, Obj], view: hosts.NamespaceHosts
    ) -> list[hosts.HostEntry]:
        assert rt.net is not None
        entries = view.entries(by_uid.get(rt.uid, rt.pod), rt.net.ip)
        if self.service is not None and (names := self.service.host_names(rt.namespace)):
            entries.append(hosts.HostEntry(str(self.service.hosts_ip), names))
        return entries

    def _hosts_for(self, rt: PodRuntime) -> list[hosts.HostEntry]:
        """The runtime's provider at setup: entries from the cluster as it is now."""
        return self._entries(rt, *self._hosts_view(rt.namespace))

    def _lookup(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.source.lookup(kind, namespace, name)
