"""From a container spec to a :class:`LaunchSpec`: env, command line, mounts, log file.

Everything here is resolved afresh for every run of a container, as the kubelet does: a
restarted container sees the pod's current labels through the downward API and the current
contents of a ConfigMap it reads through ``configMapKeyRef``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from elastrain.api.quantity import parse_float as parse_quantity

from elastrain_sandbox.agent import hosts, mountpoints
from elastrain_sandbox.agent.cgroups import MemoryController
from elastrain_sandbox.agent.container import LaunchSpec
from elastrain_sandbox.agent.envvars import ConfigError, ObjectLookup, command_line, container_env
from elastrain_sandbox.agent.images import ImageMap, base_env
from elastrain_sandbox.agent.network import PodNet
from elastrain_sandbox.agent.volumes import Mount, container_mounts
from elastrain_sandbox.containerlogs import log_path

Obj = Mapping[str, Any]

RESOLV_CONF = (
    "# elastrain sandbox: no DNS server; cluster names resolve through /etc/hosts and\n"
    "# anything else fails fast against the pod's own loopback.\n"
    "nameserver 127.0.0.1\n"
    "search {ns}.svc.cluster.local svc.cluster.local cluster.local\n"
    "options ndots:5 timeout:1 attempts:1\n"
)


TERMINATION_PATH = "/dev/termination-log"
MAX_MESSAGE = 4096  # bytes of a termination message file, as the kubelet reads it
FALLBACK_LINES = 80  # FallbackToLogsOnError: the log's tail, this many lines...
FALLBACK_BYTES = 2048  # ...and at most this many bytes


@dataclass(frozen=True)
class LaunchContext:
    """The pod-level facts every container launch of one pod needs."""

    pod: Obj
    net: PodNet
    host_ip: str
    pod_dir: Path
    volumes: Mapping[str, Path]
    state_dir: Path
    images: ImageMap
    namespaces: bool
    owner: str
    lookup: ObjectLookup | None
    memory: MemoryController | None = None
    # Who holds the mount points created on the host (see ``mountpoints``): the pod; the
    # pod runtime releases it at teardown.
    holder: str = ""
    # The ``kubernetes`` Service's variables (real control plane), before the spec's ``env``.
    service_env: Mapping[str, str] | None = None


def launch_spec(ctx: LaunchContext, spec: Obj, restart: int) -> LaunchSpec:
    """Resolve container ``spec`` for run number ``restart``; raises ``ConfigError``."""
    meta = ctx.pod["metadata"]
    runtime = ctx.images.runtime(str(spec.get("image", "")))
    hostname = hosts.pod_hostname(ctx.pod)
    env = container_env(
        ctx.pod,
        spec,
        pod_ip=ctx.net.ip,
        host_ip=ctx.host_ip,
        base={**base_env(runtime, hostname), **(ctx.service_env or {})},
        lookup=ctx.lookup,
    )
    argv = command_line(spec, env, runtime.entrypoint)
    container_id = f"{ctx.owner}-{uuid.uuid4().hex}" if ctx.owner else uuid.uuid4().hex
    termination_log = ctx.pod_dir / "termination" / container_id
    termination_log.parent.mkdir(parents=True, exist_ok=True)
    termination_log.touch()
    mounts = [
        Mount(str(ctx.pod_dir / "hosts"), "/etc/hosts"),
        Mount(str(ctx.pod_dir / "resolv.conf"), "/etc/resolv.conf"),
        Mount(str(termination_log), str(spec.get("terminationMessagePath") or TERMINATION_PATH)),
        *container_mounts(spec, ctx.volumes),
    ]
    # The image's own files stay visible where a volume would cover them: bound back last,
    # read-only, from the source podexec opened before mounting anything.
    mounts += [Mount(path, path, True) for path in runtime.files if _inside_mounts(path, mounts)]
    workdir = spec.get("workingDir")
    holder = ctx.holder or mountpoints.holder_key(ctx.owner, str(meta.get("uid") or meta["name"]))
    if ctx.namespaces:
        for i, mount in enumerate(mounts):
            if not _inside_mounts(mount.target, mounts[:i]):  # else made in that volume
                mountpoints.claim(holder, mount.target, Path(mount.source).is_dir())
        if workdir and str(workdir).startswith("/") and not _inside_mounts(str(workdir), mounts):
            mountpoints.claim(holder, str(workdir), True)
    limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
    cgroup = None
    if ctx.memory is not None and limit is not None:
        try:
            cgroup = ctx.memory.create(ctx.owner, container_id, int(parse_quantity(limit)))
        except ValueError as exc:
            raise ConfigError(f"invalid memory limit {limit!r}: {exc}") from exc
    namespace = str(meta.get("namespace", "default"))
    return LaunchSpec(
        container_id=container_id,
        argv=argv,
        env=env,
        log_path=log_path(ctx.state_dir, namespace, str(meta["name"]), spec["name"], restart),
        spec_path=ctx.pod_dir / "run" / f"{container_id}.json",
        workdir=workdir,
        hostname=hostname,
        netns_path=ctx.net.netns_path,
        namespaces=ctx.namespaces,
        mounts=mounts,
        cgroup=cgroup,
        termination_log=termination_log if ctx.namespaces else None,
    )


def _inside_mounts(path: str, mounts: list[Mount]) -> bool:
    """Whether ``path`` lies in (or is) one of ``mounts``' targets: created there, after that
    mount, it lands in the volume, not on the host. The exec helper creates such nested mount
    points and ``workingDir`` once the mounts before them are in place."""
    p = PurePosixPath(path)
    return any(p == PurePosixPath(m.target) or PurePosixPath(m.target) in p.parents for m in mounts)


def termination_message(spec: Obj, launch: LaunchSpec, exit_code: int) -> str:
    """``state.terminated.message``: what the container wrote to its terminationMessagePath,
    else, for a failure under ``FallbackToLogsOnError``, the tail of its log."""
    message = ""
    if launch.termination_log is not None:
        try:
            message = launch.termination_log.read_bytes()[:MAX_MESSAGE].decode(errors="replace")
        except OSError:
            message = ""
    if message or exit_code == 0 or spec.get("terminationMessagePolicy") != "FallbackToLogsOnError":
        return message
    try:
        lines = launch.log_path.read_bytes().splitlines()[-FALLBACK_LINES:]
    except OSError:
        return ""
    return b"\n".join(lines)[-FALLBACK_BYTES:].decode(errors="replace")
