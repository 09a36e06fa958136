"""Single-process runs, in-process (no torch import per test): the JSON contract, resume,
SIGTERM handling, user scripts and the CNN."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from elastrain_trainer.checkpoint import CheckpointDir
from elastrain_trainer.cli import main
from trainer_helpers import EXAMPLE, poll

CONTRACT = {
    "steps",
    "first_loss",
    "final_loss",
    "world_size",
    "samples_per_second",
    "resumed_from_step",
    "restarts",
}


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main([*args, "--metrics-port", "0", "--samples", "512"])
    lines = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(lines[-1])


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No distributed wiring from the outer env; one intra-op thread on the shared 2 cores."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TF_CONFIG", "ELASTRAIN_CLUSTER"):
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_fresh_run_then_resume_matches_an_uninterrupted_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ("--batch-size", "32", "--optimizer", "momentum", "--lr", "0.02")
    code, first = _run(
        capsys,
        *common,
        "--steps",
        "20",
        "--checkpoint-dir",
        str(tmp_path / "a"),
        "--checkpoint-every",
        "10",
    )
    assert code == 0
    assert first.keys() >= CONTRACT
    assert (first["steps"], first["world_size"], first["resumed_from_step"]) == (20, 1, 0)
    assert first["final_loss"] < first["first_loss"]
    assert CheckpointDir(tmp_path / "a", 3).steps() == [10, 20]

    code, resumed = _run(capsys, *common, "--steps", "35", "--checkpoint-dir", str(tmp_path / "a"))
    assert code == 0
    assert (resumed["steps"], resumed["resumed_from_step"]) == (35, 20)
    assert resumed["first_loss"] == first["first_loss"]  # the job's, not this incarnation's

    code, straight = _run(capsys, *common, "--steps", "35")
    assert code == 0
    # Model, optimizer state and data position all came back: the trajectory is the same.
    assert resumed["final_loss"] == pytest.approx(straight["final_loss"], rel=1e-6)


def test_sigterm_saves_a_checkpoint_and_exits_143(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = CheckpointDir(tmp_path, 3)

    def terminate_after_first_checkpoint() -> None:
        poll(ckpt.steps, timeout=120, what="the first periodic checkpoint", interval=0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_after_first_checkpoint, daemon=True)
    killer.start()
    code, summary = _run(
        capsys,
        "--steps",
        "100000",
        "--checkpoint-dir",
        str(tmp_path),
        "--checkpoint-every",
        "3",
        "--step-delay",
        "0.01",
    )
    killer.join(timeout=10)
    assert code == 143
    assert summary["status"] == "preempted"
    assert 3 <= summary["steps"] < 100000
    assert ckpt.steps()[-1] == summary["steps"]  # the signal's checkpoint, at the last step
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler removed again


def test_user_script_through_the_library_api(capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = _run(
        capsys,
        "--script",
        f"{EXAMPLE}:build",
        "--steps",
        "40",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--batch-size",
        "32",
    )
    assert code == 0
    assert summary["final_loss"] < 0.7 * summary["first_loss"]


def test_cnn_with_micro_batches_and_cpu_autocast(capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = _run(
        capsys,
        "--model",
        "cnn",
        "--steps",
        "30",
        "--optimizer",
        "adamw",
        "--lr",
        "0.01",
        "--batch-size",
        "32",
        "--micro-batch",
        "12",
        "--amp",
    )
    assert code == 0
    assert summary["final_loss"] < summary["first_loss"]
