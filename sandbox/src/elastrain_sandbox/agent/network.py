"""Pod networking: a network namespace per pod on a per-instance bridge, or a degraded fallback.

With root, every pod gets what a CNI plugin gives it on a real cluster: its own network
namespace (so two pods both bind 0.0.0.0:29400, as torchrun's TCPStore does), a veth pair whose
pod end is ``eth0``, one address from a subnet private to this sandbox instance, loopback up
and a default route via the bridge. The bridge holds the gateway address, so the host (the
agent, the API server's port-forward, tests) reaches every pod IP, and pods reach each other
at layer 2. IP forwarding is never enabled: nothing a pod sends leaves the machine.

Without root (or where the kernel refuses namespaces) pods share the host network. Each still
gets a distinct 127.x address, which works for code that binds that address, but ports bound on
0.0.0.0 collide across pods: one job at a time. That is logged once, loudly.

Subnets are claimed host-wide (a file per slot under the runtime dir, taken under a lock) and
every kernel object name carries the owner's :class:`InstanceId`, so parallel sandboxes never
clash and the next one to start removes what a crashed one left behind.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from elastrain_sandbox.agent import hostcmd
from elastrain_sandbox.agent.instance import InstanceId, b36, host_lock, remove_runtime_dir_if_idle
from elastrain_sandbox.binds import BRIDGE_POOL

log = logging.getLogger(__name__)

BRIDGE_PREFIX = "etb"
VETH_PREFIX = "etv"
NETNS_PREFIX = "etns-"
POD_SEQ_WIDTH = 4
# 10.213.0.0/16 cut into 64 /22 slots: 1021 pod addresses per sandbox, 64 sandboxes per host.
SUBNET_POOL = BRIDGE_POOL
SUBNET_PREFIX = 22
LOOPBACK_SLOTS = range(2, 255)  # 127.<slot>.x.y; 127.0.x and 127.1.x are left to other uses
NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class PodNet:
    """What a pod's processes need to join its network: its IP and (if isolated) its netns."""

    ip: str
    netns: str | None = None

    @property
    def netns_path(self) -> Path | None:
        """The bind-mounted namespace file that ``nsenter --net=`` takes."""
        return NETNS_DIR / self.netns if self.netns else None


class PodNetwork(Protocol):
    """The network backend a pod runtime asks for pod addresses."""

    @property
    def isolated(self) -> bool:
        """Whether pods get their own network namespace."""

    @property
    def host_ip(self) -> str:
        """The node's address as pods see it (``status.hostIP``)."""

    def add_pod(self, key: str) -> PodNet:
        """Create the pod's network; idempotent per ``key`` (the pod UID)."""

    def remove_pod(self, key: str) -> None:
        """Tear the pod's network down; a no-op for an unknown key."""

    def close(self) -> None:
        """Remove everything this instance created."""


def _subnet(slot: int) -> ipaddress.IPv4Network:
    return list(SUBNET_POOL.subnets(new_prefix=SUBNET_PREFIX))[slot]


def _claim_slot(directory: Path, kind: str, slots: range, owner: InstanceId) -> int:
    """Take the first free slot of ``kind``; a slot whose owner died is free again."""
    for slot in slots:
        claim = directory / f"{kind}-{slot}"
        try:
            holder = InstanceId.parse_tag(claim.read_text().strip())
        except (FileNotFoundError, ValueError):
            holder = None
        if holder is not None and holder != owner and holder.alive():
            continue
        if kind == "subnet" and _subnet_in_use(_subnet(slot)):
            continue
        claim.write_text(owner.tag)
        return slot
    raise RuntimeError(f"no free {kind} slot in {directory}")


def _release_slot(directory: Path, kind: str, slot: int, owner: InstanceId) -> None:
    claim = directory / f"{kind}-{slot}"
    try:
        if claim.read_text().strip() == owner.tag:
            claim.unlink()
    except FileNotFoundError:
        pass


def _subnet_in_use(subnet: ipaddress.IPv4Network) -> bool:
    """Whether any host route overlaps ``subnet`` (never shadow someone else's network)."""
    for line in hostcmd.run(["ip", "-4", "route", "show", "table", "all"]).splitlines():
        dest = line.split()[0] if line.split() else ""
        if dest in ("default", "local", "broadcast", "unreachable"):
            dest = line.split()[1] if len(line.split()) > 1 else ""
        try:
            if ipaddress.IPv4Network(dest, strict=False).overlaps(subnet):
                return True
        except ValueError:
            continue
    return False


def _owner_of(name: str, prefix: str) -> InstanceId | None:
    """The instance encoded in a kernel object's name, or None if the name is not ours."""
    if not name.startswith(prefix):
        return None
    try:
        return InstanceId.parse_tag(name[len(prefix) : len(prefix) + 7])
    except ValueError:
        return None


def sweep_stale() -> list[str]:
    """Delete namespaces, links and claims whose owning process is gone; return what went.

    Runs under the host lock at every start, so a SIGKILLed sandbox costs nothing to the next.
    Processes still inside a dead instance's pod namespaces are killed first: they are the
    containers of a crashed agent, and nothing else will ever stop them.
    """
    removed: list[str] = []
    if os.geteuid() != 0:
        return removed
    with host_lock() as directory:
        for line in hostcmd.run(["ip", "netns", "list"], check=False).splitlines():
            name = line.split()[0] if line.split() else ""
            owner = _owner_of(name, NETNS_PREFIX)
            if owner is None or owner.alive():
                continue
            _kill_netns_processes(name)
            hostcmd.run(["ip", "netns", "delete", name], check=False)
            removed.append(name)
        for name in _link_names():
            for prefix in (BRIDGE_PREFIX, VETH_PREFIX):
                owner = _owner_of(name, prefix)
                if owner is not None and not owner.alive():
                    hostcmd.run(["ip", "link", "delete", name], check=False)
                    removed.append(name)
        for claim in directory.glob("*-*"):
            try:
                holder = InstanceId.parse_tag(claim.read_text().strip())
            except (OSError, ValueError):
                continue
            if not holder.alive():
                claim.unlink(missing_ok=True)
                removed.append(str(claim))
    return removed


def _link_names() -> list[str]:
    names = []
    for line in hostcmd.run(["ip", "-o", "link", "show"], check=False).splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _kill_netns_processes(netns: str) -> None:
    for pid_text in hostcmd.run(["ip", "netns", "pids", netns], check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_text), signal.SIGKILL)


@dataclass
class BridgeNetwork:
    """Root mode: one bridge per instance, one netns + veth pair per pod."""

    instance: InstanceId
    slot: int
    isolated: bool = True
    _pods: dict[str, tuple[PodNet, str]] = field(default_factory=dict)
    _free: list[str] = field(default_factory=list)
    _next_host: int = 2
    _pod_seq: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, instance: InstanceId) -> BridgeNetwork:
        """Claim a subnet and bring the bridge up (after sweeping dead instances)."""
        sweep_stale()
        with host_lock() as directory:
            slot = _claim_slot(directory, "subnet", range(64), instance)
        net = cls(instance, slot)
        try:
            hostcmd.run(
                ["ip", "-batch", "-"],
                stdin=(
                    f"link add {net.bridge} type bridge\n"
                    f"addr add {net.host_ip}/{SUBNET_PREFIX} dev {net.bridge}\n"
                    f"link set {net.bridge} up\n"
                ),
            )
        except Exception:
            net.close()
            raise
        return net

    @property
    def bridge(self) -> str:
        """The bridge's interface name (``etb`` + instance tag)."""
        return BRIDGE_PREFIX + self.instance.tag

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        """This instance's private subnet."""
        return _subnet(self.slot)

    @property
    def host_ip(self) -> str:
        """The gateway address on the bridge: the node's IP as pods and the host see it."""
        return str(self.subnet.network_address + 1)

    def _allocate_ip(self) -> str:
        """A never-used address while there are any (a reused one may linger in a peer's
        hosts file or ARP cache), then the longest-free one."""
        if self._next_host < self.subnet.num_addresses - 1:
            address = str(self.subnet.network_address + self._next_host)
            self._next_host += 1
            return address
        if self._free:
            return self._free.pop(0)
        raise RuntimeError(f"subnet {self.subnet} exhausted")

    def add_pod(self, key: str) -> PodNet:
        """Namespace, veth pair (pod end ``eth0``), address, loopback and default route."""
        with self._lock:  # pods are set up from worker threads, several at once
            if key in self._pods:
                return self._pods[key][0]
            seq = b36(self._pod_seq % 36**POD_SEQ_WIDTH, POD_SEQ_WIDTH)
            self._pod_seq += 1
            netns = f"{NETNS_PREFIX}{self.instance.tag}-{seq}"
            veth = f"{VETH_PREFIX}{self.instance.tag}{seq}"
            ip = self._allocate_ip()
            pod = PodNet(ip=ip, netns=netns)
            self._pods[key] = (pod, veth)
        try:
            hostcmd.run(["ip", "netns", "add", netns])
            hostcmd.run(
                ["ip", "-batch", "-"],
                stdin=(
                    f"link add {veth} type veth peer name eth0 netns {netns}\n"
                    f"link set {veth} master {self.bridge}\n"
                    f"link set {veth} up\n"
                ),
            )
            hostcmd.run(
                ["ip", "-n", netns, "-batch", "-"],
                stdin=(
                    f"addr add {ip}/{SUBNET_PREFIX} dev eth0\n"
                    "link set lo up\n"
                    "link set eth0 up\n"
                    f"route add default via {self.host_ip}\n"
                ),
            )
        except Exception:
            self.remove_pod(key)
            raise
        return pod

    def remove_pod(self, key: str) -> None:
        """Kill stragglers in the namespace, delete it (which deletes the veth pair)."""
        with self._lock:
            entry = self._pods.pop(key, None)
        if entry is None:
            return
        pod, veth = entry
        assert pod.netns is not None
        _kill_netns_processes(pod.netns)
        hostcmd.run(["ip", "netns", "delete", pod.netns], check=False)
        if veth in _link_names():
            hostcmd.run(["ip", "link", "delete", veth], check=False)
        with self._lock:
            self._free.append(pod.ip)

    def close(self) -> None:
        """Remove every pod network, the bridge and the subnet claim (and the runtime dir,
        when no sandbox holds anything in it any more)."""
        for key in list(self._pods):
            self.remove_pod(key)
        hostcmd.run(["ip", "link", "delete", self.bridge], check=False)
        with host_lock() as directory:
            _release_slot(directory, "subnet", self.slot, self.instance)
        remove_runtime_dir_if_idle()


@dataclass
class LoopbackNetwork:
    """Degraded mode: host network, a distinct 127.<slot>.x.y per pod, no isolation."""

    instance: InstanceId
    slot: int
    isolated: bool = False
    _pods: dict[str, PodNet] = field(default_factory=dict)
    _next: int = 2
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, instance: InstanceId) -> LoopbackNetwork:
        """Claim a 127.<slot>/16 block host-wide so parallel degraded sandboxes differ too."""
        with host_lock() as directory:
            slot = _claim_slot(directory, "loopback", LOOPBACK_SLOTS, instance)
        return cls(instance, slot)

    @property
    def host_ip(self) -> str:
        """The node address: the host's own loopback."""
        return "127.0.0.1"

    def add_pod(self, key: str) -> PodNet:
        """Allocate the next unused address of this instance's block."""
        with self._lock:
            if key not in self._pods:
                host = self._next
                self._next += 1
                self._pods[key] = PodNet(ip=f"127.{self.slot}.{host // 254}.{host % 254 + 1}")
            return self._pods[key]

    def remove_pod(self, key: str) -> None:
        """Forget the pod (loopback addresses need no teardown)."""
        with self._lock:
            self._pods.pop(key, None)

    def close(self) -> None:
        """Release the block claim."""
        self._pods.clear()
        with host_lock() as directory:
            _release_slot(directory, "loopback", self.slot, self.instance)
        remove_runtime_dir_if_idle()


_warned_degraded = False


def open_network(instance: InstanceId, *, isolate: bool = True) -> PodNetwork:
    """The best network this process can have: bridged namespaces as root, else loopback."""
    global _warned_degraded
    reason = "not running as root" if os.geteuid() != 0 else "isolation disabled"
    if isolate and os.geteuid() == 0:
        try:
            return BridgeNetwork.create(instance)
        except (hostcmd.HostCommandError, OSError) as exc:
            reason = f"network namespaces unavailable ({exc})"
    if not _warned_degraded:
        _warned_degraded = True
        log.warning(
            "sandbox pods share the host network (%s): each pod gets a distinct 127.x address, "
            "hostnames are not set and /etc/hosts is not private, so ports bound on 0.0.0.0 "
            "collide across pods; run one job at a time",
            reason,
        )
    return LoopbackNetwork.create(instance)
