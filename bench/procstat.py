"""CPU time, memory and children of a process, read from ``/proc`` (Linux only).

The bench's cost figures (P4) come from the kernel's own accounting rather than from the
operator's ``process_*`` metrics, so that the API server, etcd and the operator are measured
the same way, including processes that export nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name, which may hold spaces."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used (``utime + stime``; children that it
    has not reaped are not included, which is what we want: the operator's own cost)."""
    fields = _stat_fields(pid)
    # After the name: state(0) ppid(1) ... utime is field 14 of stat, so index 11 here.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    """Resident set size in MiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> dict[str, int]:
    """Direct children of ``pid`` by command name (``comm``), e.g. ``kube-apiserver``.

    The real control plane's components run in process groups of their own, but they are
    still children of the process that started them, so a scan of ``ppid`` finds them."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        if ppid == pid:
            found[name] = int(entry.name)
    return found


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()
