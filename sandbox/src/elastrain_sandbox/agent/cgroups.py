"""Container memory limits through the memory cgroup controller, and the kubelet's OOMKilled.

With root and a writable memory controller (cgroup v1 ``/sys/fs/cgroup/memory``, or cgroup v2
with ``memory`` enabled for children), a container with ``resources.limits.memory`` runs in its
own cgroup with that limit: the kernel OOM-kills it like on a node, and the agent reports
``OOMKilled`` from the cgroup's ``oom_kill`` counter. The cgroup also lists every process of
the container, however it detached itself, for the final kill. Without a usable controller,
limits are not enforced (documented) and nothing else changes.

Cgroup names carry the owning agent's instance tag, so the next agent removes those a crashed
one left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from elastrain_sandbox.agent.instance import InstanceId

PREFIX = "elastrain."
V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))


@dataclass(frozen=True)
class MemoryController:
    """Where container cgroups are created, and which cgroup version's files they have."""

    root: Path
    v2: bool

    @classmethod
    def detect(cls) -> MemoryController | None:
        """The writable memory controller of this host, if the agent may use one (root)."""
        if os.geteuid() != 0:
            return None
        if (V1_ROOT / "memory.limit_in_bytes").exists() and os.access(V1_ROOT, os.W_OK):
            return cls(V1_ROOT, v2=False)
        for root in V2_ROOTS:
            try:
                enabled = (root / "cgroup.subtree_control").read_text().split()
            except OSError:
                continue
            if "memory" in enabled and os.access(root, os.W_OK):
                return cls(root, v2=True)
        return None

    def create(self, owner: str, container_id: str, limit: int) -> Path:
        """A cgroup for one container run with ``limit`` bytes of memory."""
        path = self.root / f"{PREFIX}{owner}.{container_id}"
        path.mkdir(exist_ok=True)
        limit_file = "memory.max" if self.v2 else "memory.limit_in_bytes"
        (path / limit_file).write_text(str(limit))
        if self.v2:
            with contextlib.suppress(OSError):
                (path / "memory.swap.max").write_text("0")
        return path

    def oom_killed(self, path: Path) -> bool:
        """Whether the kernel OOM-killed a process of this cgroup."""
        events = path / ("memory.events" if self.v2 else "memory.oom_control")
        try:
            for line in events.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value) > 0
        except (OSError, ValueError):
            pass
        return False

    def remove(self, path: Path) -> None:
        """Kill whatever is left in the cgroup, then remove it (best effort)."""
        kill_members(path)
        with contextlib.suppress(OSError):
            path.rmdir()

    def sweep(self) -> list[Path]:
        """Remove cgroups left by agents that are no longer running."""
        removed = []
        for path in self.root.glob(f"{PREFIX}*"):
            tag = path.name[len(PREFIX) :].split(".", 1)[0]
            try:
                owner = InstanceId.parse_tag(tag)
            except ValueError:
                continue
            if not owner.alive():
                self.remove(path)
                removed.append(path)
        return removed


def members(path: Path) -> list[int]:
    """PIDs in the cgroup."""
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def kill_members(path: Path) -> None:
    """SIGKILL every process in the cgroup."""
    for pid in members(path):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
