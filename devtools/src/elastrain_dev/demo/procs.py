"""The demo's background processes (sandbox, operator): start, wait for, record, stop.

Each runs in its own session so that stopping it signals its whole process group, and its pid
is written to ``.demo/pids.json`` together with the kernel's start time for that pid: a
``--stop`` run, possibly days later, must never signal an unrelated process that reused the pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


class ProcessFailed(RuntimeError):
    """A background process exited or never became ready; the message names its log."""


@dataclass(frozen=True)
class Background:
    """One started process: what it is, its pid (= process group id) and where it logs."""

    name: str
    pid: int
    start_time: int
    log: str

    def alive(self) -> bool:
        """Whether this exact process (not a pid reuser) still runs and is not a zombie."""
        return _start_time(self.pid) == self.start_time


def _start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (clock ticks since boot), None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields follow the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def spawn(name: str, argv: Sequence[str], log: Path, env: Mapping[str, str]) -> Background:
    """Start ``argv`` in a new session, stdout and stderr appended to ``log``."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    start = _start_time(proc.pid)
    if start is None:
        proc.wait()
        raise ProcessFailed(f"{name} exited at once with status {proc.returncode}; see {log}")
    return Background(name, proc.pid, start, str(log))


def wait_until(
    what: str,
    ready: Callable[[], bool],
    processes: Sequence[Background],
    timeout: float,
    interval: float = 0.2,
) -> None:
    """Poll ``ready`` until true; fail early, naming the log, if one of ``processes`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        for process in processes:
            if not process.alive():
                raise ProcessFailed(
                    f"{process.name} exited while waiting for {what}; see {process.log}"
                )
        if time.monotonic() > deadline:
            logs = ", ".join(p.log for p in processes)
            raise ProcessFailed(f"timed out after {timeout:.0f}s waiting for {what}; see {logs}")
        time.sleep(interval)


def stop(process: Background, grace: float = 20.0) -> bool:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds; True if it had to be killed.

    SIGTERM first because the sandbox tears down its pods and network namespaces on the way out
    and the operator releases its watches; only a process that ignores it is killed outright.
    """
    if not process.alive():
        return False
    _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(process.pid)
        if not process.alive():
            return False
        time.sleep(0.1)
    _signal_group(process, signal.SIGKILL)
    while process.alive():
        _reap(process.pid)
        time.sleep(0.05)
    return True


def _signal_group(process: Background, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def save(path: Path, processes: Sequence[Background]) -> None:
    """Record ``processes`` for a later ``--stop``."""
    path.write_text(json.dumps([asdict(p) for p in processes], indent=2) + "\n")


def load(path: Path) -> list[Background]:
    """The processes a previous run recorded; empty when there is no record."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    return [Background(**item) for item in raw]
