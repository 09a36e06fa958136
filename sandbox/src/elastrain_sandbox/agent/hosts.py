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

    def render(self) -> str:
        """The line as /etc/hosts spells it."""
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
    return HEADER + STATIC + "".join(entry.render() for entry in entries)


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


def entries_for(
    pod: Obj, pod_ip: str, pods: Iterable[Obj], services: Iterable[Obj]
) -> list[HostEntry]:
    """Everything ``pod`` should resolve, computed from the pods and services it can see.

    ``pods`` and ``services`` are Kubernetes objects (dicts) of any namespace; only the pod's
    own namespace matters for per-pod names, as with kube-dns's search path.
    """
    meta = pod["metadata"]
    namespace = meta.get("namespace", "default")
    subdomain = pod.get("spec", {}).get("subdomain")
    entries = [HostEntry(pod_ip, pod_names(pod_hostname(pod), subdomain, namespace))]
    live = [
        p
        for p in pods
        if p["metadata"].get("namespace", "default") == namespace
        and p["metadata"].get("uid") != meta.get("uid")
        and _pod_ip(p)
        and _pod_live(p)
    ]
    services = list(services)
    # Per-pod names exist for a subdomain that names a headless service (what kube-dns serves
    # to every pod) and, for the pod's own subdomain, even before that service exists.
    domains = {subdomain} if subdomain else set()
    domains |= {
        str(s["metadata"]["name"])
        for s in services
        if s.get("spec", {}).get("clusterIP") == "None"
        and s["metadata"].get("namespace", "default") == namespace
    }
    for peer in sorted(live, key=lambda p: str(p["metadata"]["name"])):
        peer_domain = peer.get("spec", {}).get("subdomain")
        if peer_domain and peer_domain in domains:
            names = pod_names(pod_hostname(peer), peer_domain, namespace)
            entries.append(HostEntry(str(_pod_ip(peer)), names))
    for svc in sorted(services, key=lambda s: str(s["metadata"]["name"])):
        entries.extend(_service_entries(svc, pod, pod_ip, live))
    return entries


def _service_entries(svc: Obj, pod: Obj, pod_ip: str, live: list[Obj]) -> list[HostEntry]:
    spec = svc.get("spec", {})
    ns = svc["metadata"].get("namespace", "default")
    if spec.get("clusterIP") != "None" or ns != pod["metadata"].get("namespace", "default"):
        return []
    selector = spec.get("selector") or {}
    not_ready_ok = bool(spec.get("publishNotReadyAddresses"))
    members = [(p, str(_pod_ip(p))) for p in live if _selects(selector, p)]
    if _selects(selector, pod) and _pod_live(pod):
        members.append((pod, pod_ip))
    ips = sorted({ip for p, ip in members if not_ready_ok or _pod_ready(p)})
    names = service_names(str(svc["metadata"]["name"]), ns)
    return [HostEntry(ip, names) for ip in ips]
