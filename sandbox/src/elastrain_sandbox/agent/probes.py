"""Container probes (readiness and liveness) the way the kubelet runs them.

``tcpSocket`` and ``httpGet`` connect from the node (the agent, in the host network) to the
pod's IP, as a kubelet does; ``exec`` runs the command inside the container's namespaces with
its environment. A probe counts as failed on error or after ``timeoutSeconds``. ``grpc`` is not
implemented: such a probe always succeeds, and the agent says so once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from elastrain_sandbox.agent.container import enter_argv

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]
_warned_grpc = False


@dataclass(frozen=True)
class ProbeTarget:
    """Where a probe goes: the pod's IP, the container's ports, its main PID and env."""

    pod_ip: str
    ports: Sequence[Obj]
    pid: int
    env: Mapping[str, str]
    namespaces: bool


def _port(value: Any, ports: Sequence[Obj]) -> int:
    """A probe port: a number, or the name of one of the container's ports."""
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    for port in ports:
        if port.get("name") == value:
            return int(port["containerPort"])
    raise ValueError(f"no container port named {value!r}")


async def _tcp(probe: Obj, target: ProbeTarget) -> bool:
    host = probe.get("host") or target.pod_ip
    _, writer = await asyncio.open_connection(host, _port(probe["port"], target.ports))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _http(probe: Obj, target: ProbeTarget) -> bool:
    host = probe.get("host") or target.pod_ip
    port = _port(probe["port"], target.ports)
    if str(probe.get("scheme", "HTTP")).upper() != "HTTP":
        raise ValueError("only HTTP probes are supported by the sandbox")
    headers = {"Host": f"{host}:{port}", "User-Agent": "kube-probe/1.37", "Connection": "close"}
    headers.update({h["name"]: h["value"] for h in probe.get("httpHeaders") or []})
    request = f"GET {probe.get('path', '/')} HTTP/1.1\r\n"
    request += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request.encode())
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
    parts = status_line.split()
    return len(parts) >= 2 and 200 <= int(parts[1]) < 400


async def _exec(probe: Obj, target: ProbeTarget) -> bool:
    command = enter_argv(
        target.pid, [str(c) for c in probe.get("command") or []], target.namespaces
    )
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=dict(target.env),
        start_new_session=True,
    )
    try:
        return await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def run_hook(hook: Obj, target: ProbeTarget) -> bool:
    """A lifecycle handler (``exec``, ``httpGet``, ``sleep``) run to completion; True if it
    succeeded. The caller bounds it by the grace period, as the kubelet does for preStop."""
    try:
        if "sleep" in hook:
            await asyncio.sleep(float(hook["sleep"].get("seconds", 0)))
            return True
        if "httpGet" in hook:
            return await _http(hook["httpGet"], target)
        if "exec" in hook:
            return await _exec(hook["exec"], target)
    except (OSError, ValueError):
        return False
    log.warning("lifecycle handler %s is not supported by the sandbox; skipped", list(hook))
    return True


async def probe_once(probe: Obj, target: ProbeTarget) -> bool:
    """Run ``probe`` once; True on success."""
    global _warned_grpc
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "tcpSocket" in probe:
            return await asyncio.wait_for(_tcp(probe["tcpSocket"], target), timeout)
        if "httpGet" in probe:
            return await asyncio.wait_for(_http(probe["httpGet"], target), timeout)
        if "exec" in probe:
            return await asyncio.wait_for(_exec(probe["exec"], target), timeout)
    except (OSError, ValueError, TimeoutError):
        return False
    if not _warned_grpc:
        _warned_grpc = True
        log.warning(
            "probe kind %s is not supported by the sandbox; treated as passing", list(probe)
        )
    return True


@dataclass
class ProbeCounter:
    """Consecutive results against ``successThreshold``/``failureThreshold``."""

    success_threshold: int
    failure_threshold: int
    successes: int = 0
    failures: int = 0

    @classmethod
    def for_probe(cls, probe: Obj) -> ProbeCounter:
        """Thresholds from the probe spec, with the API's defaults (1 and 3)."""
        return cls(int(probe.get("successThreshold", 1)), int(probe.get("failureThreshold", 3)))

    def record(self, ok: bool) -> bool | None:
        """Add a result; return the new verdict once a threshold is reached, else None."""
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            return True if self.successes >= self.success_threshold else None
        self.failures, self.successes = self.failures + 1, 0
        return False if self.failures >= self.failure_threshold else None
