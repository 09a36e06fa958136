"""``make demo`` end to end: the real sandbox, operator and trainer, in non-interactive mode.

Asserts on the ``--result-json`` the demo writes, which holds only what the system reported
(TrainingJob status, the trainer's summary lines, the pids the fault hit), never what the demo
printed; the printed output is checked only for what a newcomer needs to find in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from elastrain_dev.demo.jobs import load as load_jobs
from elastrain_dev.demo.procs import Background
from elastrain_sandbox.agent.instance import InstanceId
from elastrain_sandbox.agent.network import NETNS_PREFIX

REPO = Path(__file__).resolve().parents[2]
STEPS = {job.name: job.total_steps for job in load_jobs(REPO / "examples" / "demo")}
# The demo promises 5 minutes; this only stops a hung run from hanging CI.
RUN_LIMIT = 480

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the sandbox gives each pod a netns"),
    pytest.mark.timeout(RUN_LIMIT + 60),
]


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    """One run of the demo shared by the tests below (it takes minutes)."""
    work = tmp_path_factory.mktemp("demo")
    result_path = work / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "elastrain_dev.demo",
            "--non-interactive",
            "--demo-dir",
            str(work / "state"),
            "--result-json",
            str(result_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT,
        env={k: v for k, v in os.environ.items() if k not in ("IMAGE", "KUBECONFIG")},
    )
    assert result_path.exists(), proc.stdout + proc.stderr
    return proc, json.loads(result_path.read_text()), work / "state"


def test_demo_exits_zero_and_both_jobs_succeed(demo_run: tuple[Any, dict[str, Any], Path]) -> None:
    proc, result, _ = demo_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result["ok"] is True and result["error"] is None
    jobs = {job["name"]: job for job in result["jobs"]}
    assert set(jobs) == {"demo-ddp", "demo-ps"}
    for job in jobs.values():
        assert job["phase"] == "Succeeded"
        assert job["summary"]["status"] == "completed"
        assert job["summary"]["steps"] == STEPS[job["name"]]


def test_the_killed_worker_restarted_and_resumed(
    demo_run: tuple[Any, dict[str, Any], Path],
) -> None:
    _, result, _ = demo_run
    assert result["ok"], result["error"]
    fault = result["fault"]
    assert fault["job"] == "demo-ddp" and fault["pod"] == "demo-ddp-worker-1"
    assert fault["pids"] and fault["last_checkpoint_step"] > 0
    killed = next(job for job in result["jobs"] if job["name"] == fault["job"])
    assert killed["resumed_from_step"] > 0 or killed["trainer_restarts"] > 0
    # It resumed from a checkpoint taken before the kill, not from scratch.
    assert 0 < killed["resumed_from_step"] <= fault["at_step"]


def test_the_loss_went_down(demo_run: tuple[Any, dict[str, Any], Path]) -> None:
    _, result, _ = demo_run
    assert result["ok"], result["error"]
    for job in result["jobs"]:
        assert job["summary"]["final_loss"] < job["summary"]["first_loss"], job["name"]


def test_nothing_is_left_running(demo_run: tuple[Any, dict[str, Any], Path]) -> None:
    _, result, state = demo_run
    assert result["leftover_processes"] == []
    assert not (state / "pids.json").exists()
    for process in result["processes"]:
        assert not Background(**process).alive(), process
    # The sandbox's pod network namespaces carry its pid in their names; none may remain.
    sandbox_pid = next(p["pid"] for p in result["processes"] if p["name"] == "sandbox")
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    owners = [
        InstanceId.parse_tag(line.split()[0][len(NETNS_PREFIX) :][:7]).pid
        for line in listed.stdout.splitlines()
        if line.startswith(NETNS_PREFIX)
    ]
    assert sandbox_pid not in owners


def test_output_tells_a_newcomer_what_happened_and_where_to_look(
    demo_run: tuple[Any, dict[str, Any], Path],
) -> None:
    proc, _, _ = demo_run
    out = proc.stdout
    assert "FAULT: SIGKILL the training process of demo-ddp-worker-1" in out
    assert "demo-ddp: Succeeded" in out and "demo-ps: Succeeded" in out
    assert "Both jobs succeeded" in out
    assert "get tj" in out and "describe tj demo-ddp" in out and "logs demo-ddp-worker-1" in out
    assert "\x1b[" not in out  # non-interactive: no cursor movement
