"""Bring your own model and data to Elastrain's trainer.

Run it either way; both get sharding, elastic resume, checkpoints, metrics and the JSON summary:

    elastrain-train --script examples/custom_task.py:build --steps 200 --checkpoint-dir /ckpt
    python examples/custom_task.py --steps 200          # same flags and ELASTRAIN_* env
    torchrun --nproc-per-node 2 examples/custom_task.py --steps 200

Contract: `build(ctx)` returns a `Task` whose data set yields `(input, target)` pairs and whose
loss averages over the batch. Build everything from `ctx.seed` so every rank gets the same data.
"""

from __future__ import annotations

import math

import torch
from elastrain_trainer import Task, TaskContext, train
from torch import nn
from torch.utils.data import Dataset


class Waves(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """y = sin(3x) + x/2 on [-2, 2]: a tiny non-linear regression, generated in memory."""

    def __init__(self, samples: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.rand(samples, 1, generator=gen) * 4 - 2
        self.y = torch.sin(3 * self.x) + self.x / 2

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


def build(ctx: TaskContext) -> Task:
    """The factory `--script` points at; called once per process, after seeding torch."""
    hidden = 32
    model = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 1))
    nn.init.normal_(model[0].weight, std=1 / math.sqrt(2))
    return Task(model=model, dataset=Waves(ctx.samples, ctx.seed), loss_fn=nn.MSELoss())


if __name__ == "__main__":
    raise SystemExit(train(build))
