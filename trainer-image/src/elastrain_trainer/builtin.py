"""Built-in tasks: synthetic data generated in memory from the seed, so no download is needed.

`mlp` is linear regression y = X.w + noise fitted by a small MLP (the seed example's task shape);
`cnn` classifies 1x12x12 "images" whose label is which quadrant holds a bright blob.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

from elastrain_trainer.task import Task, TaskContext, TaskFactory


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def regression_data(ctx: TaskContext) -> TensorDataset:
    """X ~ N(0, 1), y = X.w + noise * N(0, 1) with a seed-fixed w (identical on every rank)."""
    gen = _generator(ctx.seed + 1)
    x = torch.randn(ctx.samples, ctx.features, generator=gen)
    w = torch.randn(ctx.features, 1, generator=gen) / ctx.features**0.5
    y = x @ w + ctx.noise * torch.randn(ctx.samples, 1, generator=gen)
    return TensorDataset(x, y)


def mlp_task(ctx: TaskContext) -> Task:
    """A two-layer MLP on the regression data, mean-squared error."""
    model = nn.Sequential(nn.Linear(ctx.features, 32), nn.Tanh(), nn.Linear(32, 1))
    return Task(model=model, dataset=regression_data(ctx), loss_fn=nn.MSELoss())


IMAGE_SIZE = 12


def blob_images(ctx: TaskContext) -> TensorDataset:
    """Noise images with a 3x3 bright blob in one quadrant; the quadrant (0-3) is the label."""
    gen = _generator(ctx.seed + 2)
    n = ctx.samples
    images = 0.3 * torch.randn(n, 1, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    labels = torch.randint(0, 4, (n,), generator=gen)
    half = IMAGE_SIZE // 2
    offsets = torch.randint(0, half - 3 + 1, (n, 2), generator=gen)
    for i in range(n):
        row = (int(labels[i]) // 2) * half + int(offsets[i, 0])
        col = (int(labels[i]) % 2) * half + int(offsets[i, 1])
        images[i, 0, row : row + 3, col : col + 3] += 1.0
    return TensorDataset(images, labels)


def cnn_task(ctx: TaskContext) -> Task:
    """A two-conv-layer CNN on the blob images, cross-entropy."""
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 4),
    )
    return Task(model=model, dataset=blob_images(ctx), loss_fn=nn.CrossEntropyLoss())


BUILTIN: dict[str, TaskFactory] = {"mlp": mlp_task, "cnn": cnn_task}
