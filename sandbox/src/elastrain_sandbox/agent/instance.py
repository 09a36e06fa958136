"""Host-wide identity of one agent instance, and the sweep of instances that died.

Several sandboxes run on the same machine at once (parallel test runs by several engineers),
and each creates kernel objects that outlive a crashed process: network namespaces, veth
pairs, a bridge, a subnet claim. Every such name therefore carries the owning process's PID
and a per-process sequence number, so that (a) parallel instances never pick the same name
and (b) the next instance to start can tell which objects belong to a dead process and remove
them. The PID is encoded in base 36 with a fixed width so that names fit Linux's 15-character
interface-name limit and still parse back unambiguously.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
PID_WIDTH = 5  # 36**5 > 4194304, the kernel's largest pid_max
SEQ_WIDTH = 2
_sequence = itertools.count()


def b36(value: int, width: int) -> str:
    """Encode ``value`` in fixed-width base 36 (names must parse back without separators)."""
    if value < 0 or value >= 36**width:
        raise ValueError(f"{value} does not fit {width} base-36 digits")
    digits = []
    for _ in range(width):
        value, rem = divmod(value, 36)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))


def unb36(text: str) -> int:
    """Decode :func:`b36`; raises ``ValueError`` on a character outside the alphabet."""
    return int(text, 36)


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (a zombie counts as alive: it is not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class InstanceId:
    """``pid`` + per-process ``seq``: unique among live instances on this host."""

    pid: int
    seq: int

    @classmethod
    def new(cls) -> InstanceId:
        """A fresh id for an agent created by this process."""
        return cls(os.getpid(), next(_sequence) % 36**SEQ_WIDTH)

    @property
    def tag(self) -> str:
        """The fixed-width text form used inside kernel object names."""
        return b36(self.pid, PID_WIDTH) + b36(self.seq, SEQ_WIDTH)

    @classmethod
    def parse_tag(cls, tag: str) -> InstanceId:
        """Inverse of :attr:`tag`; raises ``ValueError`` for text that is not a tag."""
        if len(tag) != PID_WIDTH + SEQ_WIDTH:
            raise ValueError(f"not an instance tag: {tag!r}")
        return cls(unb36(tag[:PID_WIDTH]), unb36(tag[PID_WIDTH:]))

    def alive(self) -> bool:
        """Whether the owning process still runs (a live owner cleans up after itself)."""
        return pid_alive(self.pid)


def runtime_dir() -> Path:
    """Host-wide directory for cross-instance state (lock, subnet claims).

    ``/run`` is a tmpfs cleared at boot, exactly the lifetime of the kernel objects it tracks;
    without write access there (not root) the claims go under the temp dir instead.
    """
    override = os.environ.get("ELASTRAIN_SANDBOX_RUNTIME_DIR")
    candidates = [Path(override)] if override else [Path("/run/elastrain-sandbox")]
    candidates.append(Path(os.environ.get("TMPDIR", "/tmp")) / f"elastrain-sandbox-{os.getuid()}")
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    raise RuntimeError(f"no writable runtime dir among {candidates}")


@contextlib.contextmanager
def host_lock(timeout: float = 60.0) -> Iterator[Path]:
    """Serialise sweeps and host-wide claims across every sandbox process on this host.

    Held for milliseconds; a holder that never lets go (a stopped process) makes this raise
    after ``timeout`` rather than hang every sandbox on the machine.

    The lock file may be unlinked (with its directory) by :func:`remove_runtime_dir_if_idle`
    while others wait on it, so a lock counts only if, once taken, the path still names the
    file that was locked; otherwise the waiter starts over on the new file. That is what makes
    removing the directory safe: two processes can never both hold "the" lock.
    """
    deadline = time.monotonic() + timeout
    while True:
        directory = runtime_dir()
        lock = directory / "lock"
        try:
            handle = open(lock, "a+")  # noqa: SIM115 - closed below, after the yield
        except FileNotFoundError:  # the directory was removed between mkdir and open
            continue
        try:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{lock} held for over {timeout}s") from None
                    time.sleep(0.01)
            try:
                current = os.stat(lock)
            except FileNotFoundError:
                continue
            held = os.fstat(handle.fileno())
            if (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino):
                continue
            try:
                yield directory
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return
        finally:
            handle.close()


def remove_runtime_dir_if_idle() -> bool:
    """Remove the runtime dir once no claim of any sandbox is left in it.

    Called when an instance lets its claims go. Under the lock, a directory holding nothing
    but the lock file is idle: the lock file is unlinked and the directory removed (a process
    that opened the old lock file notices and retries, see :func:`host_lock`; one that creates
    a fresh lock file first makes the ``rmdir`` fail, which leaves the directory in use).
    """
    with host_lock() as directory:
        try:
            if any(entry.name != "lock" for entry in os.scandir(directory)):
                return False
            (directory / "lock").unlink()
            directory.rmdir()
        except OSError:
            return False
    return True
