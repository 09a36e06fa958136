"""The trainer tests' process harness leaves nothing running.

torchrun starts each worker in a session of its own, so killing torchrun's process group alone
orphans the workers, which then train forever (this leaked three trainers per run of the
metrics test until the harness killed the whole tree).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from trainer_helpers import TORCHRUN, Proc, clean_env, descendants, poll


def test_kill_stops_torchrun_and_every_worker(tmp_path: Path) -> None:
    script = tmp_path / "sleeper.py"
    script.write_text("import time\nwhile True:\n    time.sleep(1)\n")
    cmd = [TORCHRUN, "--standalone", "--nproc-per-node", "2", "--no-python", sys.executable]
    proc = Proc([*cmd, str(script)], clean_env(), tmp_path / "torchrun.log", tmp_path)
    try:
        workers = poll(
            lambda: (
                found
                if len(found := [p for p in descendants(proc.popen.pid) if _runs(p, str(script))])
                == 2
                else None
            ),
            60,
            "both workers",
        )
        assert all(os.getsid(pid) != os.getsid(proc.popen.pid) for pid in workers)
    finally:
        proc.kill()
    assert poll(lambda: not any(_alive(pid) for pid in workers) or None, 30, "workers gone")


def _runs(pid: int, script: str) -> bool:
    try:
        return script in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
