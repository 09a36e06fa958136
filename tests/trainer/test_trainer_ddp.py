"""Multi-process DDP: real gloo process groups, torchrun's elastic agent, real signals."""

from __future__ import annotations

import gc
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from elastrain_sandbox.ports import free_port
from elastrain_trainer import Task, TaskContext, train
from elastrain_trainer.builtin import mlp_task
from elastrain_trainer.data import fetch
from trainer_helpers import (
    TORCHRUN,
    TRAIN,
    Proc,
    children,
    clean_env,
    env_of,
    poll,
    scrape,
)

pytestmark = pytest.mark.slow

COMPRESSIONS = ("none", "fp16", "bf16", "powersgd")
TRAIN_ARGS = [
    "--steps",
    "40",
    "--batch-size",
    "32",
    "--samples",
    "512",
    "--lr",
    "0.05",
    "--optimizer",
    "momentum",
    "--metrics-port",
    "0",
    "--powersgd-start-step",
    "5",
]


def _compression_rank(rank: int, port: int, out: str) -> None:
    """One rank: train the MLP once per compression in an existing process group (the library
    path: `train` reuses a group the caller initialised) and save what it ended with."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    results: dict[str, Any] = {}
    for kind in COMPRESSIONS:
        built: list[Task] = []

        def factory(ctx: TaskContext, built: list[Task] = built) -> Task:
            built.append(mlp_task(ctx))
            return built[-1]

        assert train(factory, [*TRAIN_ARGS, "--compression", kind]) == 0
        task = built[0]
        inputs, targets = fetch(task.dataset, list(range(512)), torch.device("cpu"))
        with torch.no_grad():
            loss = float(task.loss_fn(task.model(inputs), targets))
        results[kind] = {"loss": loss, "params": task.model.state_dict()}
    torch.save(results, Path(out) / f"rank{rank}.pt")
    # Rank 0 hosts the TCPStore: leaving before rank 1 is done with the group aborts rank 1.
    dist.barrier()
    gc.collect()
    dist.destroy_process_group()


def test_two_ranks_converge_identically_with_every_compression_hook(tmp_path: Path) -> None:
    mp.spawn(_compression_rank, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    initial = mlp_task(
        TaskContext(seed=0, features=16, samples=512, noise=0.01, rank=0, world_size=1)
    )
    inputs, targets = fetch(initial.dataset, list(range(512)), torch.device("cpu"))
    with torch.no_grad():
        initial_loss = float(initial.loss_fn(initial.model(inputs), targets))
    reference = ranks[0]["none"]["loss"]
    assert reference < 0.1 * initial_loss
    for kind in COMPRESSIONS:
        for name, value in ranks[0][kind]["params"].items():
            assert torch.equal(value, ranks[1][kind]["params"][name]), (kind, name)
        # Compressed gradients train to within a tolerance of exact allreduce.
        assert ranks[0][kind]["loss"] == pytest.approx(reference, abs=0.01 * initial_loss), kind


METRICS = (
    "step",
    "epoch",
    "loss",
    "samples_per_second",
    "world_size",
    "restarts",
    "last_checkpoint_step",
    "last_checkpoint_age_seconds",
)
JOB_ARGS = [
    "--batch-size",
    "32",
    "--samples",
    "512",
    "--checkpoint-every",
    "10",
    "--log-every",
    "1",
]


def _operator_env(rdzv_port: int, nproc: int, max_restarts: int) -> dict[str, str]:
    """What the operator injects for a torchrun worker (torchrun reads PET_<FLAG> defaults)."""
    return clean_env(
        PET_NNODES="1:2",
        PET_NPROC_PER_NODE=str(nproc),
        PET_NODE_RANK="0",
        PET_RDZV_BACKEND="c10d",
        PET_RDZV_ENDPOINT=f"127.0.0.1:{rdzv_port}",
        PET_RDZV_ID="test-job-uid",
        PET_MAX_RESTARTS=str(max_restarts),
        # With min < max nodes the c10d rendezvous waits last_call_timeout (30 s by default)
        # for more nodes each round; one node is all this test has.
        PET_RDZV_CONF="last_call_timeout=1",
    )


def _metric(text: str, name: str, rank: int) -> float:
    prefix = f'elastrain_trainer_{name}{{rank="{rank}",role="worker"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    raise AssertionError(f"{prefix!r} not served:\n{text}")


def _rank_pid(launcher: int, rank: int) -> int | None:
    for pid in children(launcher):
        env = env_of(pid)
        if env.get("RANK") == str(rank) and "TORCHELASTIC_RESTART_COUNT" in env:
            return pid
    return None


def _progress_after(run: Proc, marker: str) -> bool:
    """Whether a progress line was printed after the first line containing `marker`."""
    lines = run.lines()
    for i, line in enumerate(lines):
        if marker in line:
            return any(later.startswith("step ") for later in lines[i + 1 :])
    return False


def test_elastic_lifecycle_kill_rejoin_sigterm_then_resume_at_world_size_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One job through its life: a rank is killed and torchrun re-rendezvouses from the newest
    checkpoint; the pod is deleted (SIGTERM) and the launcher exits 143 after a checkpoint; the
    job comes back at 3 ranks over plain MASTER_ADDR wiring and ends where one uninterrupted
    process would have."""
    ckpt = tmp_path / "ckpt"
    metrics_port = free_port(2)
    run = Proc(
        [
            TORCHRUN,
            "--no-python",
            TRAIN,
            *JOB_ARGS,
            "--steps",
            "100000",
            "--checkpoint-dir",
            str(ckpt),
            "--step-delay",
            "0.05",
            "--metrics-port",
            str(metrics_port),
        ],
        _operator_env(free_port(), nproc=2, max_restarts=1),
        tmp_path / "torchrun.log",
        tmp_path,
    )
    try:
        poll(lambda: run.last_step() >= 12, 180, "step 12 (after the first checkpoint)")
        for rank in (0, 1):  # every rank serves its own endpoint on port + LOCAL_RANK
            text = scrape(metrics_port + rank)
            values = {name: _metric(text, name, rank) for name in METRICS}
            assert values["world_size"] == 2 and values["restarts"] == 0
            # The gauges move at the ranks' sync steps (about once a second, and at every
            # checkpoint), so they may trail the log line by a few steps.
            assert values["step"] >= values["last_checkpoint_step"] >= 10
            assert values["last_checkpoint_age_seconds"] >= 0 and values["loss"] > 0
            assert values["samples_per_second"] > 0
        victim = poll(lambda: _rank_pid(run.popen.pid, 1), 30, "rank 1's pid")
        killed_at = run.last_step()
        os.kill(victim, signal.SIGKILL)
        poll(lambda: _progress_after(run, "resumed from step"), 180, "training after the restart")
        os.kill(run.popen.pid, signal.SIGTERM)  # what the kubelet does when the pod is deleted
        code = run.wait(120)
    finally:
        run.kill()
    assert code == 143, run.tail()
    stopped = run.summary()
    assert (stopped["status"], stopped["world_size"], stopped["restarts"]) == ("preempted", 2, 1)
    # The re-rendezvous resumed from the newest checkpoint: at most one interval (10) was lost.
    assert stopped["resumed_from_step"] >= killed_at - 10
    stopped_at = stopped["steps"]
    assert (ckpt / f"ckpt-{stopped_at:010d}.pt").is_file()  # the SIGTERM checkpoint

    # Back at 3 ranks with plain MASTER_ADDR/RANK wiring (no torchrun, no LOCAL_RANK).
    total = str(stopped_at + 20)
    master = str(free_port())
    ranks = [
        Proc(
            [
                TRAIN,
                *JOB_ARGS,
                "--steps",
                total,
                "--checkpoint-dir",
                str(ckpt),
                "--metrics-port",
                "0",
            ],
            clean_env(RANK=str(r), WORLD_SIZE="3", MASTER_ADDR="127.0.0.1", MASTER_PORT=master),
            tmp_path / f"rank{r}.log",
            tmp_path,
        )
        for r in range(3)
    ]
    try:
        codes = [p.wait(180) for p in ranks]
    finally:
        for p in ranks:
            p.kill()
    assert codes == [0, 0, 0], "\n\n".join(p.tail(15) for p in ranks)
    scaled = ranks[0].summary()
    assert (scaled["steps"], scaled["world_size"]) == (stopped_at + 20, 3)
    assert scaled["resumed_from_step"] == stopped_at
    assert scaled["first_loss"] == stopped["first_loss"]

    # The global batch and data order do not depend on the world size, so this job (2 ranks, a
    # crash, a preemption, then 3 ranks) followed the optimisation of one uninterrupted process.
    assert train(None, [*JOB_ARGS, "--steps", total, "--metrics-port", "0"]) == 0
    straight = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scaled["final_loss"] == pytest.approx(straight["final_loss"], rel=1e-3)
