"""P5's step-time comparison (issue #14): the trainer's DDP loop against a plain DDP loop.

Run as one process per rank with plain ``MASTER_ADDR``/``MASTER_PORT``/``WORLD_SIZE``/``RANK``
wiring (``bench/p5_trainer.py`` starts them)::

    python -P bench/p5_plain_ddp.py --blocks 8 --steps 250 --out DIR   # -P: see p5_trainer

Both loops run in the *same* processes on the *same* gloo process group, in alternating blocks
of ``--steps`` steps (order ABBA ABBA...), so that start-up cost (importing torch takes seconds
on a loaded 2-core machine) is paid once, and so that any drift in machine load (other jobs on
the same cores) hits both sides alike:

* **elastrain**: the trainer's library entry point ``elastrain_trainer.train(factory, argv)``,
  which is what the ``elastrain-train`` console script runs, with the trainer's own flags
  (``--mode ddp --batch-size 64``...). It finds the process group already initialised and
  trains on it. Its model and data are the built-in ``mlp`` task.
* **plain**: a hand-written loop, the baseline a user would write without Elastrain:
  ``DistributedDataParallel`` over the same model with the same initial weights, the same data
  and data order (``randperm`` seeded ``seed + epoch``, cut into global batches, a contiguous
  share per rank), SGD at the same learning rate. No checkpoints, metrics or logging.

Both sides time themselves the same way: the loss function records ``time.perf_counter()``
each time it is called, once per step in both loops (no micro-batches). The interval between
two calls is one whole step: data slicing, forward, backward, gradient allreduce, optimizer
step and, for the trainer, whatever it adds per step (its loss/stop-flag allreduce, gauges,
progress line). Each rank writes ``DIR/rank<RANK>.json``: ``{"elastrain": [[t...], ...],
"plain": [[t...], ...]}``, one list of timestamps per block, in the order they ran.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from elastrain_trainer.builtin import mlp_task
from elastrain_trainer.cli import train
from elastrain_trainer.task import Task, TaskContext
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import TensorDataset

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# The trainer's defaults for the built-in data set, spelt out for the plain loop.
FEATURES, SAMPLES, NOISE = 16, 4096, 0.01
SIDES = ("elastrain", "plain")


def timed(loss_fn: LossFn, stamps: list[float]) -> LossFn:
    """``loss_fn``, recording when each call starts: one call per step in both loops."""

    def wrapped(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        stamps.append(time.perf_counter())
        return loss_fn(output, target)

    return wrapped


def elastrain_block(steps: int, batch_size: int, seed: int, lr: float) -> list[float]:
    """``steps`` steps of the trainer's DDP loop; this rank's per-step timestamps."""
    stamps: list[float] = []

    def factory(ctx: TaskContext) -> Task:
        task = mlp_task(ctx)
        return Task(model=task.model, dataset=task.dataset, loss_fn=timed(task.loss_fn, stamps))

    argv = ["--mode", "ddp", "--steps", str(steps), "--batch-size", str(batch_size)]
    argv += ["--seed", str(seed), "--lr", str(lr), "--optimizer", "sgd", "--backend", "gloo"]
    # No endpoint: every block would bind the same port again. The gauges are still set every
    # step; an idle endpoint (nobody scrapes here) is a thread that costs nothing.
    argv += ["--metrics-port", "0"]
    code = train(factory, argv)
    if code != 0:
        raise SystemExit(f"elastrain_trainer.train exited {code}")
    return stamps


def plain_block(steps: int, batch_size: int, seed: int, lr: float) -> list[float]:
    """``steps`` steps of the hand-written DDP loop; this rank's per-step timestamps."""
    rank, world = dist.get_rank(), dist.get_world_size()
    ctx = TaskContext(seed, FEATURES, SAMPLES, NOISE, rank=rank, world_size=world)
    torch.manual_seed(seed)  # as the trainer's build_task: identical initial weights
    task = mlp_task(ctx)
    if not isinstance(task.dataset, TensorDataset):
        raise TypeError("the built-in mlp task's data set is a TensorDataset")
    inputs, targets = task.dataset.tensors
    model = DistributedDataParallel(task.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    stamps: list[float] = []
    loss_fn = timed(task.loss_fn, stamps)
    share = batch_size // world
    batches = len(inputs) // batch_size
    order = torch.empty(0, dtype=torch.long)
    for step in range(steps):
        epoch, batch = divmod(step, batches)
        if batch == 0:
            gen = torch.Generator().manual_seed(seed + epoch)
            order = torch.randperm(len(inputs), generator=gen)
        start = batch * batch_size + rank * share
        index = order[start : start + share]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs[index]), targets[index])
        loss.backward()
        optimizer.step()
    del model, optimizer
    gc.collect()  # DDP's reducer sits in reference cycles: free it before the next block
    return stamps


def main() -> None:
    parser = argparse.ArgumentParser(description="P5 step-time blocks (see the module doc)")
    parser.add_argument("--blocks", type=int, default=6, help="blocks per side")
    parser.add_argument("--steps", type=int, default=200, help="steps per block")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    dist.init_process_group("gloo", init_method="env://")
    blocks: dict[str, list[list[float]]] = {side: [] for side in SIDES}
    runners = {"elastrain": elastrain_block, "plain": plain_block}
    for i in range(2 * args.blocks):
        # ABBA: each side runs first as often as second, so a linear drift cancels.
        side = SIDES[(i + i // 2) % 2]
        blocks[side].append(runners[side](args.steps, args.batch_size, args.seed, args.lr))
        dist.barrier()
    gc.collect()
    dist.destroy_process_group()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(blocks))


if __name__ == "__main__":
    main()
