"""One container's process: start it in the pod's namespaces, wait for it, stop it.

Each container runs in its own session (so its process group is its whole tree: torchrun and
every worker it spawns) and carries a marker variable naming its container ID, which lets the
agent find and kill processes that left the group (``setsid``) or outlived the main process,
as the kubelet does by killing the container's cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from elastrain_sandbox.agent import podexec
from elastrain_sandbox.agent.cgroups import members
from elastrain_sandbox.agent.instance import InstanceId
from elastrain_sandbox.agent.volumes import Mount

log = logging.getLogger(__name__)

MARKER_VAR = "ELASTRAIN_SANDBOX_CONTAINER"
START_TIMEOUT = 120.0  # from spawn to exec of the command; generous for a loaded machine


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to exec a container, fully resolved by the pod runtime."""

    container_id: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    spec_path: Path
    workdir: str | None = None
    hostname: str | None = None
    netns_path: Path | None = None
    namespaces: bool = False
    mounts: Sequence[Mount] = field(default_factory=tuple)
    cgroup: Path | None = None  # the container's memory cgroup, when its limit is enforced
    termination_log: Path | None = None  # host file behind terminationMessagePath


def exit_code(returncode: int) -> int:
    """asyncio's ``-signal`` becomes the shell's and the kubelet's ``128 + signal``."""
    return 128 - returncode if returncode < 0 else returncode


def _launcher(spec: LaunchSpec) -> list[str]:
    argv: list[str] = []
    if spec.netns_path is not None:
        argv += [shutil.which("nsenter") or "nsenter", f"--net={spec.netns_path}"]
    if spec.namespaces:
        argv += [
            shutil.which("unshare") or "unshare",
            "--uts",
            "--mount",
            "--propagation",
            "private",
        ]
    return [*argv, sys.executable, "-I", "-S", podexec.__file__, str(spec.spec_path)]


def enter_argv(pid: int, command: Sequence[str], namespaces: bool) -> list[str]:
    """``command`` run inside the namespaces (network, mount, UTS) and cwd of process ``pid``.

    What ``kubectl exec`` and exec probes need; without namespaces it is ``command`` itself.
    """
    if not namespaces:
        return list(command)
    nsenter = shutil.which("nsenter") or "nsenter"
    return [nsenter, "-t", str(pid), "-n", "-m", "-u", "-w", "--", *command]


def marked_processes() -> Iterator[tuple[int, list[str]]]:
    """Every process that carries a container marker in its environment, with the marker's
    values (one, unless a process set it again itself): one pass over ``/proc``, shared by
    the lookups below and by ``usage.scan``."""
    prefix = f"{MARKER_VAR}=".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if prefix not in environ:
            continue
        values = [v[len(prefix) :] for v in environ.split(b"\0") if v.startswith(prefix)]
        if values:
            yield int(entry.name), [v.decode(errors="replace") for v in values]


def processes_with_marker(container_id: str) -> list[int]:
    """PIDs whose environment carries ``container_id``'s marker (the container's processes)."""
    return [pid for pid, ids in marked_processes() if container_id in ids]


def sweep_orphans() -> list[int]:
    """SIGKILL container processes whose agent is dead; return their PIDs.

    Container IDs start with the owning agent's instance tag, so the processes of an agent
    that was SIGKILLed (and could not stop its containers) are found by the next one to start.
    """
    killed = []
    for pid, ids in marked_processes():
        for value in ids:
            try:
                owner = InstanceId.parse_tag(value.split("-", 1)[0])
            except ValueError:
                continue
            if not owner.alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
    return killed


async def _read_to_eof(fd: int) -> bytes:
    """Read a pipe to its end without blocking the loop (or tying up a thread)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        return await reader.read()
    finally:
        transport.close()


class ContainerProcess:
    """A started container; the pod runtime awaits :meth:`wait` and calls :meth:`stop`."""

    def __init__(
        self, spec: LaunchSpec, proc: asyncio.subprocess.Process, start_error: str | None
    ) -> None:
        self.spec = spec
        self._proc = proc
        self.pid = proc.pid
        self.start_error = start_error

    @classmethod
    async def start(cls, spec: LaunchSpec) -> ContainerProcess:
        """Spawn the launcher and return once the container's command is running.

        The exec helper holds the write end of a pipe, close-on-exec: end of file without a
        word means the command was exec'd (namespaces, hostname and mounts in place, so a
        probe or ``kubectl exec`` aimed at its PID lands inside the container); a message
        means it could not start.
        """
        env = {**spec.env, MARKER_VAR: spec.container_id}
        spec.spec_path.parent.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        payload = {
            "argv": list(spec.argv),
            "env": env,
            "workdir": spec.workdir,
            "hostname": spec.hostname if spec.namespaces else None,
            "mounts": [asdict(m) for m in spec.mounts] if spec.namespaces else [],
            "status_fd": write_fd,
            "cgroup_procs": str(spec.cgroup / "cgroup.procs") if spec.cgroup else None,
        }
        fd = os.open(spec.spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle)
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(spec.log_path, "ab") as log:
                proc = await asyncio.create_subprocess_exec(
                    *_launcher(spec),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    env={MARKER_VAR: spec.container_id, "PATH": env.get("PATH", "/usr/bin:/bin")},
                    start_new_session=True,
                    pass_fds=(write_fd,),
                )
        finally:
            os.close(write_fd)
        try:
            message = await asyncio.wait_for(_read_to_eof(read_fd), START_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            message = f"container did not start within {START_TIMEOUT:g}s".encode()
        return cls(spec, proc, message.decode(errors="replace") or None)

    def exec_argv(
        self, command: Sequence[str], namespaces: bool
    ) -> tuple[list[str], dict[str, str]]:
        """argv and env that run ``command`` inside this container (its processes' marker
        included, so whatever it starts dies with the container)."""
        env = {**self.spec.env, MARKER_VAR: self.spec.container_id}
        return enter_argv(self.pid, command, namespaces), env

    @property
    def running(self) -> bool:
        """Whether the main process has not been reaped yet."""
        return self._proc.returncode is None

    async def wait(self) -> int:
        """Wait for the main process; then kill what is left of its tree; return the code."""
        code = exit_code(await self._proc.wait())
        await self.kill_leftovers()
        return code

    def kill_now(self) -> None:
        """Synchronous SIGKILL of the group and marked processes (interpreter exit path)."""
        self.signal_group(signal.SIGKILL)
        for pid in processes_with_marker(self.spec.container_id):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def signal_group(self, sig: int) -> None:
        """Signal the container's process group (a vanished group is not an error)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def kill_leftovers(self, timeout: float = 10.0) -> None:
        """SIGKILL the group and every process carrying this container's marker, until none is
        left: a container counts as terminated only once its whole tree is gone, as when the
        kubelet kills a cgroup. Killed processes take a moment to vanish, and a process in the
        middle of ``execve`` briefly shows no environment, hence polling until two scans a
        little apart both come back empty."""
        deadline = time.monotonic() + timeout
        self.signal_group(signal.SIGKILL)
        empty_scans = 0
        while empty_scans < 2:
            pids = processes_with_marker(self.spec.container_id)
            if self.spec.cgroup is not None:
                pids += members(self.spec.cgroup)
            empty_scans = 0 if pids else empty_scans + 1
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if pids and time.monotonic() > deadline:
                log.warning(
                    "container %s: processes %s survive SIGKILL", self.spec.container_id, pids
                )
                return
            await asyncio.sleep(0.05 if not pids else 0.02)

    async def stop(self, grace: float) -> int:
        """SIGTERM the group, SIGKILL after ``grace`` seconds; return the exit code."""
        if self._proc.returncode is None:
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._proc.wait()), timeout=max(grace, 0))
        await self.kill_leftovers()
        return await self.wait()
