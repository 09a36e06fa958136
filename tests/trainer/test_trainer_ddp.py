"""Multi-process DDP: real gloo process groups, torchrun's elastic agent, real signals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from elastrain_trainer import Task, TaskContext, train
from elastrain_trainer.builtin import mlp_task
from elastrain_trainer.data import fetch
from trainer_helpers import (
    free_port,
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
