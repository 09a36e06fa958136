"""Per-pod ``/etc/hosts``: the sandbox's stand-in for cluster DNS.

There is no DNS server in the sandbox; instead each pod's private ``/etc/hosts`` (bind-mounted
over ``/etc/hosts`` in the pod's mount namespace) carries every name a pod could resolve
through kube-dns: its own hostname and FQDNs, the per-pod names of its headless-service peers
(``hostname.subdomain[.ns.svc[.cluster.local]]``) and headless service names, which map to all
their endpoints (ready ones, or all with IPs when ``publishNotReadyAddresses`` is set, as the
operator's rendezvous relies on).

Running pods' files are rewritten in place when peers come and go. A bind mount pins the inode,
so the file is truncated and rewritten, never replaced by rename; readers may briefly see a
short file, which glibc treats like a missing name, and the next lookup sees the full one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

CLUSTER_DOMAIN = "cluster.local"
HEADER = "# Kubernetes-managed hosts file (elastrain sandbox).\n"
STATIC = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class HostEntry:
    """One line: an address and the names that resolve to it (first name is canonical)."""

    ip: str
    names: tuple[str, ...]

    @cached_property
    def line(self) -> str:
        """The line as /etc/hosts spells it, kept: a peer's line is in every pod's file."""
        return f"{self.ip}\t{' '.join(self.names)}\n"


def pod_hostname(pod: Obj) -> str:
    """``spec.hostname`` or else the pod's name, as the kubelet sets the UTS hostname; a
    ``hostNetwork`` pod has its node's hostname."""
    spec = pod.get("spec", {})
    if spec.get("hostNetwork") and spec.get("nodeName"):
        return str(spec["nodeName"])
    return str(spec.get("hostname") or pod["metadata"]["name"])


def pod_names(hostname: str, subdomain: str | None, namespace: str) -> tuple[str, ...]:
    """Names of a pod: FQDN first (as the kubelet writes it), short hostname last."""
    if not subdomain:
        return (hostname,)
    base = f"{hostname}.{subdomain}"
    return (f"{base}.{namespace}.svc.{CLUSTER_DOMAIN}", f"{base}.{namespace}.svc", base, hostname)


def service_names(name: str, namespace: str) -> tuple[str, ...]:
    """The names a service resolves under from a pod in any namespace."""
    return (
        f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}",
        f"{name}.{namespace}.svc",
        name + "." + namespace,
        name,
    )


def render(entries: Iterable[HostEntry]) -> str:
    """The whole file: the static block, then ``entries`` in order."""
    return HEADER + STATIC + "".join([entry.line for entry in entries])


def write_in_place(path: Path, content: str) -> bool:
    """Rewrite ``path`` keeping its inode (bind mounts pin it); False if already identical."""
    data = content.encode()
    try:
        with open(path, "rb") as handle:
            if handle.read() == data:
                return False
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return True


def _pod_ip(pod: Obj) -> str | None:
    ip = pod.get("status", {}).get("podIP")
    return str(ip) if ip else None


def _pod_live(pod: Obj) -> bool:
    return pod.get("status", {}).get("phase") in (None, "Pending", "Running") and not pod[
        "metadata"
    ].get("deletionTimestamp")


def _pod_ready(pod: Obj) -> bool:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _selects(selector: Mapping[str, str], pod: Obj) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _namespace(obj: Obj) -> str:
    return str(obj["metadata"].get("namespace", "default"))


@dataclass(frozen=True)
class _Peer:
    """A live pod with an IP, as its peers see it."""

    uid: str
    ip: str
    subdomain: str | None
    ready: bool
    labels: Mapping[str, str]
    entry: HostEntry | None  # its per-pod names; None without a subdomain


@dataclass(frozen=True)
class _Headless:
    """A headless service of the namespace and the live pods it selects."""

    selector: Mapping[str, str]
    not_ready_ok: bool
    names: tuple[str, ...]
    members: tuple[_Peer, ...]

    def entries(self, ips: Iterable[str]) -> tuple[HostEntry, ...]:
        return tuple(HostEntry(ip, self.names) for ip in sorted(set(ips)))

    @cached_property
    def shared(self) -> tuple[HostEntry, ...]:
        """Its entries as every pod it neither selects nor lists sees them; the pods it lists
        see them too, unless their own address or readiness differs from the listed one."""
        return self.entries(p.ip for p in self.members if self.not_ready_ok or p.ready)

    def seen_by(self, pod: Obj, uid: str, pod_ip: str) -> tuple[HostEntry, ...]:
        """Its entries for a pod it selects or lists: ``pod`` itself counts at ``pod_ip``."""
        ips = [p.ip for p in self.members if p.uid != uid and (self.not_ready_ok or p.ready)]
        if (
            _pod_live(pod)
            and _selects(self.selector, pod)
            and (self.not_ready_ok or _pod_ready(pod))
        ):
            ips.append(pod_ip)
        return self.entries(ips)


class NamespaceHosts:
    """Everything one namespace's pods resolve, indexed once for all of them.

    Every pod's file lists every live peer of its namespace, so one refresh writes O(pods)
    lines per pod; this index keeps it at that. Computing each pod's file from the raw lists
    instead (each service against each pod, for each pod) cost O(pods x services) per pod: at
    200 jobs (400 pods) in one namespace, one refresh took the node agent about 25 s, which
    starved the embedded API server that shares its event loop.
    """

    def __init__(self, namespace: str, pods: Iterable[Obj], services: Iterable[Obj]) -> None:
        self.namespace = namespace
        peers: list[tuple[str, _Peer]] = []
        for p in pods:
            ip = _pod_ip(p)
            if _namespace(p) != namespace or not ip or not _pod_live(p):
                continue
            subdomain = p.get("spec", {}).get("subdomain") or None
            entry = (
                HostEntry(ip, pod_names(pod_hostname(p), subdomain, namespace))
                if subdomain
                else None
            )
            peer = _Peer(
                uid=str(p["metadata"].get("uid")),
                ip=ip,
                subdomain=subdomain,
                ready=_pod_ready(p),
                labels=p["metadata"].get("labels") or {},
                entry=entry,
            )
            peers.append((str(p["metadata"]["name"]), peer))
        peers.sort(key=lambda item: item[0])
        self._peers = [peer for _, peer in peers]
        by_label: dict[tuple[str, str], list[_Peer]] = {}
        for peer in self._peers:
            for key, value in peer.labels.items():
                by_label.setdefault((key, value), []).append(peer)
        headless = sorted(
            (
                s
                for s in services
                if s.get("spec", {}).get("clusterIP") == "None" and _namespace(s) == namespace
            ),
            key=lambda s: str(s["metadata"]["name"]),
        )
        # Per-pod names exist for a subdomain that names a headless service (what kube-dns
        # serves to every pod) and, for the pod's own subdomain, even before that service
        # exists (see ``entries``).
        self._domains = frozenset(str(s["metadata"]["name"]) for s in headless)
        # The per-pod names every pod sees (those under a service's name), in order.
        listed = [p for p in self._peers if p.entry is not None and p.subdomain in self._domains]
        self._listed = [p.entry for p in listed if p.entry is not None]
        self._listed_at: dict[str, list[int]] = {}
        for i, peer in enumerate(listed):
            self._listed_at.setdefault(peer.uid, []).append(i)
        self._services: list[_Headless] = []
        self._by_first_label: dict[tuple[str, str], list[int]] = {}
        self._member_of: dict[str, list[int]] = {}
        for svc in headless:
            spec = svc.get("spec", {})
            selector: Mapping[str, str] = spec.get("selector") or {}
            members: tuple[_Peer, ...] = ()
            if selector:
                # The pods carrying the selector's first label, narrowed by the rest.
                key, value = next(iter(selector.items()))
                members = tuple(
                    peer
                    for peer in by_label.get((key, value), [])
                    if all(peer.labels.get(k) == v for k, v in selector.items())
                )
                self._by_first_label.setdefault((key, value), []).append(len(self._services))
            for peer in members:
                self._member_of.setdefault(peer.uid, []).append(len(self._services))
            self._services.append(
                _Headless(
                    selector=selector,
                    not_ready_ok=bool(spec.get("publishNotReadyAddresses")),
                    names=service_names(str(svc["metadata"]["name"]), namespace),
                    members=members,
                )
            )

    def entries(self, pod: Obj, pod_ip: str) -> list[HostEntry]:
        """What ``pod`` (at ``pod_ip``, listed or not) resolves: itself, its peers' per-pod
        names, then each headless service's endpoints (ready ones, or every one with an IP
        under ``publishNotReadyAddresses``); ``pod`` itself counts with ``pod_ip``."""
        uid = str(pod["metadata"].get("uid"))
        subdomain = pod.get("spec", {}).get("subdomain") or None
        entries = [HostEntry(pod_ip, pod_names(pod_hostname(pod), subdomain, self.namespace))]
        if subdomain is None or subdomain in self._domains:
            # The usual case: the pod's subdomain is a service's, its peers are everyone's.
            listed, at = self._listed, self._listed_at.get(uid, [])
            if len(at) == 1:
                entries.extend(listed[: at[0]] + listed[at[0] + 1 :])
            else:  # not listed, or (never from one API server) listed twice
                entries.extend(e for i, e in enumerate(listed) if i not in at)
        else:
            domains = self._domains | {subdomain}
            entries.extend(
                peer.entry
                for peer in self._peers
                if peer.entry is not None and peer.subdomain in domains and peer.uid != uid
            )
        # The services that select the pod or list it see it their own way; every other one
        # looks the same to all pods.
        labels = pod["metadata"].get("labels") or {}
        own = set(self._member_of.get(uid, ()))
        for item in labels.items():
            own.update(self._by_first_label.get(item, ()))
        for index, svc in enumerate(self._services):
            entries.extend(svc.seen_by(pod, uid, pod_ip) if index in own else svc.shared)
        return entries


def entries_for(
    pod: Obj, pod_ip: str, pods: Iterable[Obj], services: Iterable[Obj]
) -> list[HostEntry]:
    """Everything ``pod`` should resolve, computed from the pods and services it can see.

    ``pods`` and ``services`` are Kubernetes objects (dicts) of any namespace; only the pod's
    own namespace matters for per-pod names, as with kube-dns's search path. For many pods of
    one namespace, build one :class:`NamespaceHosts` and ask it for each.
    """
    return NamespaceHosts(_namespace(pod), pods, services).entries(pod, pod_ip)
