"""Process helpers for the trainer's multi-process tests: free ports, clean env, log polling."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
TRAIN = str(BIN / "elastrain-train")
TORCHRUN = str(BIN / "elastrain-torchrun")
EXAMPLE = Path(__file__).resolve().parents[2] / "trainer-image" / "examples" / "custom_task.py"

# Variables from the outer environment that would change what the trainer does.
_SCRUB = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TF_CONFIG",
    "TORCHELASTIC_RESTART_COUNT",
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ELASTRAIN_", "PET_")) and k not in _SCRUB
    }
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def poll(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Call `check` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children first), from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid ...: comm may hold spaces and parentheses; split after the last.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    queue = list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        found.append(child)
        queue.extend(children.get(child, []))
    return found


class Proc:
    """A subprocess whose stdout+stderr go to a file the test can poll."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.log = log
        self._fh = open(log, "wb")  # noqa: SIM115 - closed in wait()/kill()
        self.popen = subprocess.Popen(
            list(cmd),
            env=env,
            cwd=cwd,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"process did not finish in {timeout}s:\n{self.tail()}") from None
        finally:
            self._fh.close()

    def kill(self) -> None:
        """Kill every process we started: torchrun and its workers, which torch starts in
        sessions of their own (``start_new_session``), so that killing our process group alone
        would orphan them, training on forever. The tree is read before anything dies (an
        orphan is re-parented and can no longer be found from here)."""
        if self.popen.poll() is None:
            tree = descendants(self.popen.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            for pid in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.popen.wait(timeout=30)
        self._fh.close()

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines()[-n:])

    def summary(self) -> dict[str, Any]:
        """The JSON object on the last stdout line that is one (warnings may follow on stderr)."""
        for line in reversed(self.lines()):
            if line.startswith("{"):
                return dict(json.loads(line))
        raise AssertionError(f"no JSON summary in output:\n{self.tail()}")

    def last_step(self) -> int:
        steps = [
            int(line.split()[1].split("/")[0]) for line in self.lines() if line.startswith("step ")
        ]
        return steps[-1] if steps else 0


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def children(pid: int) -> list[int]:
    """All descendants of `pid` (from /proc), to find one torchrun worker to kill."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for kid in kids:
                found.append(int(kid))
                todo.append(int(kid))
    return found


def env_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}
