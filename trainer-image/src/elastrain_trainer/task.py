"""The typed contract between user code and the trainer: a `Task` is model + data + loss.

A user script exposes `def build(ctx: TaskContext) -> Task` and runs with
`--script my_module:build` (or `path/to/file.py:build`); the trainer then supplies sharding,
elastic resume, checkpoints, compression and metrics. `ctx` carries the job's seed and sizes so a
task can build the same data on every rank without talking to the others.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import Dataset

from elastrain_trainer.errors import UsageError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TaskContext:
    """What a task factory may use: identical on every rank, so every rank builds the same data."""

    seed: int
    features: int
    samples: int
    noise: float
    rank: int
    world_size: int


@dataclass
class Task:
    """A model, a map-style data set of `(input, target)` pairs, and a mean-reduced loss.

    The loss must average over the batch (like `nn.MSELoss()` with its default reduction): the
    trainer re-weights per-rank losses by their share of the global batch, which is only exact
    for a mean.
    """

    model: torch.nn.Module
    dataset: Dataset[Any]
    loss_fn: LossFn

    def __post_init__(self) -> None:
        if not isinstance(self.model, torch.nn.Module):
            raise UsageError("Task.model must be a torch.nn.Module")
        if not isinstance(self.dataset, Sized):
            raise UsageError("Task.dataset must be a map-style data set with __len__")
        if not callable(self.loss_fn):
            raise UsageError("Task.loss_fn must be callable(output, target) -> scalar tensor")


TaskFactory = Callable[[TaskContext], Task]


def load_factory(spec: str) -> TaskFactory:
    """Import `module:function` or `path/to/file.py:function`; errors become UsageError."""
    target, _, name = spec.rpartition(":")
    if not target or not name:
        raise UsageError(f"--script {spec!r}: expected 'module:function'")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise UsageError(f"--script {spec!r}: {target} does not exist")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            if module_spec is None or module_spec.loader is None:
                raise UsageError(f"--script {spec!r}: cannot load {target}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[path.stem] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ImportError as exc:
        raise UsageError(f"--script {spec!r}: {exc}") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise UsageError(f"--script {spec!r}: {target} has no function {name}")
    return cast(TaskFactory, factory)


def build_task(factory: TaskFactory, ctx: TaskContext) -> Task:
    """Call the factory with a fixed torch seed, so every rank starts from the same weights."""
    torch.manual_seed(ctx.seed)
    task = factory(ctx)
    if not isinstance(task, Task):
        raise UsageError(f"the task factory returned {type(task).__name__}, not a Task")
    return task
