"""Inside a new pod container: set the identity, mount the volumes, then exec the command.

Runs as ``python -I -S podexec.py SPEC.json`` after ``nsenter --net`` (the pod's network
namespace) and ``unshare --uts --mount --propagation private`` (the container's own hostname
and mounts, invisible to the host). Only the standard library is imported, and it is run as a
file rather than a module, so that starting a container never pays for importing elastrain.

The exec keeps the PID, so the agent's child *is* the container's main process: its exit
status is the container's, and its process group is the container's process tree.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
START_ERROR_EXIT = 128


def _mount(source: str | None, target: str, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    src = source.encode() if source is not None else None
    if libc.mount(src, target.encode(), None, ctypes.c_ulong(flags), None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def bind(source: str, target: str, read_only: bool) -> None:
    """Bind ``source`` on ``target`` (recursively), then make it read-only if asked."""
    _mount(source, target, MS_BIND | MS_REC)
    if read_only:
        _mount(None, target, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_REC)


def _ensure_target(source: str, target: str) -> None:
    """Create a missing mount point. The agent created (and tracks) every one on the host,
    so one missing here lies inside a volume mounted before it: it is made in that volume."""
    if os.path.exists(target):
        return
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a"):
            pass


def enter(spec: dict[str, Any]) -> None:
    """Apply ``spec`` to this process, then replace it with the container's command."""
    if spec.get("cgroup_procs"):  # join the memory cgroup before anything is allocated
        Path(spec["cgroup_procs"]).write_text(str(os.getpid()))
    if spec.get("hostname"):
        socket.sethostname(spec["hostname"])
    # Every source is opened before anything is mounted: a volume mounted over a directory
    # that holds later sources (an emptyDir on /tmp, with the state dir under /tmp) would hide
    # them. The descriptors close on exec.
    mounts = spec.get("mounts", [])
    sources = [f"/proc/self/fd/{os.open(m['source'], os.O_PATH)}" for m in mounts]
    for mount, source in zip(mounts, sources, strict=True):
        _ensure_target(source, mount["target"])
        bind(source, mount["target"], bool(mount.get("read_only")))
    workdir = spec.get("workdir") or "/"
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    argv = spec["argv"]
    os.execvpe(argv[0], argv, spec["env"])


def main() -> None:
    """Entry point; any failure before exec goes back to the agent on the status pipe."""
    spec = json.loads(Path(sys.argv[1]).read_text())
    status_fd = int(spec["status_fd"])
    os.set_inheritable(status_fd, False)  # closed by a successful exec: that is the signal
    try:
        enter(spec)
    except Exception as exc:
        message = f"failed to start container: {exc}"
        print(message, file=sys.stderr, flush=True)
        os.write(status_fd, message.encode())
        os._exit(START_ERROR_EXIT)


if __name__ == "__main__":
    main()
