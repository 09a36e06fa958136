"""CPU and memory used by each container, for the kubelet's resource-metrics endpoint.

A real kubelet reads cgroup counters. The agent's containers are process trees that carry the
container's marker in their environment (``container.MARKER_VAR``), whether or not they have a
memory cgroup, so one pass over ``/proc`` gives every container's usage at once:

* CPU: user plus system time of each live process, plus the reaped children's time each one
  holds (``cutime``/``cstime``); a process's time moves to its parent's children's time when
  it is reaped, so it is counted once. A process that exits unreaped drops out for a moment,
  so :class:`Meter` keeps each counter from going back: metrics-server refuses a cumulative
  counter that decreases.
* Memory: the resident set of the container's processes (a real kubelet reports the cgroup's
  working set; the two agree within the page cache, which RSS leaves out).

Nodes share the host, so a node's usage is the sum of its containers', including the CPU of
containers that have ended (a node's counter never decreases either).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from elastrain_sandbox.agent.container import marked_processes

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Usage:
    """A container's cumulative CPU seconds and resident bytes, as last read."""

    cpu_seconds: float = 0.0
    memory_bytes: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cpu_seconds + other.cpu_seconds, self.memory_bytes + other.memory_bytes)


def _process_usage(pid: str) -> Usage | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
        with open(f"/proc/{pid}/statm", "rb") as handle:
            resident = int(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    except (ValueError, IndexError):
        return None
    return Usage((utime + stime + cutime + cstime) / TICKS, resident * PAGE)


def scan() -> dict[str, Usage]:
    """Every marked container's usage, keyed by container ID, in one pass over ``/proc``."""
    found: dict[str, Usage] = {}
    for pid, ids in marked_processes():
        usage = _process_usage(str(pid))
        if usage is None:
            continue
        # Exec'd commands and exec probes carry their container's marker too: they count
        # toward it while they run (once reaped by the agent, their time is not kept).
        cid = ids[-1]
        found[cid] = found.get(cid, Usage()) + usage
    return found


@dataclass(frozen=True)
class Running:
    """One running container as the agent knows it: where it is and what it is."""

    node: str
    namespace: str
    pod: str
    container: str
    container_id: str
    started_at: float


@dataclass(frozen=True)
class Sample:
    """A container's usage at one scrape."""

    running: Running
    usage: Usage


@dataclass
class Meter:
    """Turns raw scans into counters that never go back, per container and per node."""

    _cpu: dict[str, float] = field(default_factory=dict)  # container ID -> highest CPU seen
    _node_of: dict[str, str] = field(default_factory=dict)  # container ID -> its node
    _retired: dict[str, float] = field(default_factory=dict)  # node -> CPU of ended containers

    def read(
        self, running: Iterable[Running], scanned: dict[str, Usage]
    ) -> tuple[list[Sample], dict[str, Usage]]:
        """Container samples (those with a live process) and each node's usage."""
        samples: list[Sample] = []
        live: set[str] = set()
        for r in running:
            raw = scanned.get(r.container_id)
            if raw is None:
                continue
            live.add(r.container_id)
            cpu = max(self._cpu.get(r.container_id, 0.0), raw.cpu_seconds)
            self._cpu[r.container_id] = cpu
            self._node_of[r.container_id] = r.node
            samples.append(Sample(r, Usage(cpu, raw.memory_bytes)))
        for cid in [c for c in self._cpu if c not in live]:
            node = self._node_of.pop(cid)
            self._retired[node] = self._retired.get(node, 0.0) + self._cpu.pop(cid)
        nodes: dict[str, Usage] = {n: Usage(cpu, 0) for n, cpu in self._retired.items()}
        for s in samples:
            nodes[s.running.node] = nodes.get(s.running.node, Usage()) + s.usage
        return samples, nodes


_HELP = {
    "container_cpu_usage_seconds_total": (
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    ),
    "container_memory_working_set_bytes": (
        "gauge",
        "[STABLE] Current working set of the container in bytes",
    ),
    "container_start_time_seconds": (
        "gauge",
        "[STABLE] Start time of the container since unix epoch in seconds",
    ),
    "node_cpu_usage_seconds_total": (
        "counter",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    ),
    "node_memory_working_set_bytes": (
        "gauge",
        "[STABLE] Current working set of the node in bytes",
    ),
    "scrape_error": (
        "gauge",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    ),
}


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(
    node: str, samples: Iterable[Sample], nodes: dict[str, Usage], now: float | None = None
) -> str:
    """The kubelet's ``/metrics/resource`` text for ``node``: what metrics-server parses.

    Samples carry the scrape's time in milliseconds, as the kubelet's do; metrics-server
    computes CPU rates from the differences between two scrapes' counters and times.
    """
    stamp = int((time.time() if now is None else now) * 1000)
    series: dict[str, list[str]] = {name: [] for name in _HELP}
    for s in sorted(samples, key=lambda s: (s.running.namespace, s.running.pod)):
        r = s.running
        labels = (
            f'container="{_quote(r.container)}",namespace="{_quote(r.namespace)}",'
            f'pod="{_quote(r.pod)}"'
        )
        series["container_cpu_usage_seconds_total"].append(
            f"{{{labels}}} {s.usage.cpu_seconds:.9f} {stamp}"
        )
        series["container_memory_working_set_bytes"].append(
            f"{{{labels}}} {s.usage.memory_bytes} {stamp}"
        )
        series["container_start_time_seconds"].append(f"{{{labels}}} {r.started_at:.9f}")
    own = nodes.get(node)
    if own is not None:
        series["node_cpu_usage_seconds_total"].append(f" {own.cpu_seconds:.9f} {stamp}")
        series["node_memory_working_set_bytes"].append(f" {own.memory_bytes} {stamp}")
    series["scrape_error"].append(" 0")
    lines: list[str] = []
    for name, (kind, text) in _HELP.items():
        if not series[name]:
            continue
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        lines += [f"{name}{rest}" for rest in series[name]]
    return "\n".join(lines) + "\n"
