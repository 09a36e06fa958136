"""Data-parallel training: torchrun / MASTER_ADDR wiring or a single process.

Global batch rule: `--batch-size` is the global batch and never changes with the world size.
Each rank computes on its share (B/W, +-1 sample) and its mean loss is weighted by
share * W / B, so DDP's gradient average equals the gradient of the global-batch mean exactly.
The per-rank batch therefore shrinks as ranks join and grows as they leave; when a share would
exceed `--micro-batch`, the rank accumulates gradients over micro-batches (no allreduce until the
last one), which bounds memory without changing the maths. Because the global batch (and the
data order, see sampler.py) is invariant, the learning rate is too: `--lr` applies unchanged at
any world size, and a resume at another world size continues the same optimisation.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import io
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from elastrain_trainer import compression
from elastrain_trainer.checkpoint import CheckpointDir, Loaded, restore_rng, rng_state
from elastrain_trainer.cluster import DistEnv
from elastrain_trainer.config import TrainConfig
from elastrain_trainer.data import fetch
from elastrain_trainer.errors import EXIT_OK, EXIT_PREEMPTED, UsageError
from elastrain_trainer.metrics import TrainerMetrics
from elastrain_trainer.rendezvous import rendezvous_round
from elastrain_trainer.runtime import (
    Progress,
    StopSignal,
    autocast,
    build_optimizer,
    pick_backend,
    pick_device,
    print_summary,
)
from elastrain_trainer.sampler import ElasticDistributedSampler
from elastrain_trainer.task import Task, TaskContext, TaskFactory, build_task

log = logging.getLogger(__name__)


# How often the ranks agree on loss and stopping: about once a second. A tiny model's step
# takes a millisecond, and one more allreduce per step would double it; a large model's step
# takes seconds, and then every step syncs. A SIGTERM is acted on within about this long.
SYNC_INTERVAL_S = 1.0
MAX_SYNC_GAP = 1000


def _sync_gap(step_seconds: float) -> int:
    """Steps until the next sync, from the ranks' mean step time (the same on every rank, since
    it comes out of the allreduce: the ranks never disagree on which step syncs)."""
    if step_seconds <= 0:
        return MAX_SYNC_GAP
    return max(1, min(MAX_SYNC_GAP, int(SYNC_INTERVAL_S / step_seconds)))


@dataclass
class Position:
    """Where training stands; what a checkpoint must restore besides model and optimizer."""

    step: int = 0
    epoch: int = 0
    batch: int = 0


def run_ddp(config: TrainConfig, factory: TaskFactory, env: DistEnv) -> int:
    """Train to `config.steps`; returns the exit code (0 done, 143 stopped by a signal)."""
    device = pick_device(env.local_rank)
    owns_group = False
    if env.distributed and not dist.is_initialized():
        backend = pick_backend(config.backend, device)
        dist.init_process_group(backend, init_method="env://")
        owns_group = True
    try:
        code = _Trainer(config, factory, env, device).run()
        if owns_group:
            # With plain MASTER_ADDR wiring rank 0 hosts the TCPStore: leaving before the
            # others are done with the group would abort them.
            dist.barrier()
        return code
    finally:
        # DDP's reducer sits in reference cycles that keep the process group alive; left to
        # interpreter shutdown, gloo's threads are torn down unjoined and the process aborts
        # ("terminate called without an active exception"). Collect it here, also when the
        # caller owns the group and destroys it later.
        gc.collect()
        if owns_group:
            dist.destroy_process_group()


class _Trainer:
    def __init__(
        self, config: TrainConfig, factory: TaskFactory, env: DistEnv, device: torch.device
    ) -> None:
        self.config = config
        self.device = device
        self.distributed = dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        self.restarts = env.restarts
        self.regroup_exit = env.regroup_exit
        if config.batch_size < self.world:
            raise UsageError(
                f"--batch-size {config.batch_size} is smaller than the world size {self.world}"
            )
        ctx = TaskContext(
            seed=config.seed,
            features=config.features,
            samples=config.samples,
            noise=config.noise,
            rank=self.rank,
            world_size=self.world,
        )
        self.task: Task = build_task(factory, ctx)
        self.module = self.task.model.to(device)
        self.optimizer = build_optimizer(config, self.module.parameters())
        self.checkpoints = (
            CheckpointDir(config.checkpoint_dir, config.keep_checkpoints)
            if config.checkpoint_dir
            else None
        )
        self.metrics = TrainerMetrics("worker", self.rank)
        self.metrics.world_size.set(self.world)
        self.metrics.total_steps.set(config.steps)
        self.metrics.restarts.set(self.restarts)
        # Without torchrun's c10d rendezvous (plain wiring, one process, the static backend)
        # every start is a round of its own: torchrun's restart count is the best figure.
        self.metrics.rendezvous_round.set(rendezvous_round(fallback=self.restarts))
        self.metrics.serve(config.metrics_port + env.local_rank if config.metrics_port else 0)
        self.position = Position()
        self.first_loss: float | None = None
        self.resumed_from = 0

    # -- checkpoints -------------------------------------------------------------------------

    def _payload(self) -> dict[str, Any]:
        return {
            "model": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.position.epoch,
            "batch_in_epoch": self.position.batch,
            "global_batch": self.config.batch_size,
            "world_size": self.world,
            "seed": self.config.seed,
            "first_loss": self.first_loss,
            "rng": rng_state(),
            "saved_at": time.time(),
        }

    def _find_checkpoint(self) -> Loaded | None:
        """The newest checkpoint any rank can see, broadcast from the lowest rank holding it.

        Ranks may not share a volume (an emptyDir per pod), and after a re-rendezvous rank 0
        may be a different pod than the one that wrote the file; broadcasting from the holder
        makes resume work either way.
        """
        if not self.distributed:
            return self.checkpoints.load_latest() if self.checkpoints else None
        steps = self.checkpoints.steps() if self.checkpoints else []
        mine = steps[-1] if steps else -1
        probe = torch.tensor([mine], dtype=torch.long, device=self._collective_device())
        dist.all_reduce(probe, op=dist.ReduceOp.MAX)
        newest = int(probe.item())
        if newest < 0:
            return None
        probe.fill_(self.rank if mine == newest else self.world)
        dist.all_reduce(probe, op=dist.ReduceOp.MIN)
        holder = int(probe.item())
        loaded = None
        if self.rank == holder and self.checkpoints is not None:
            loaded = self.checkpoints.load_latest()
        data = _broadcast_bytes(
            _serialize(loaded) if self.rank == holder else None, holder, probe.device
        )
        return loaded if self.rank == holder else _deserialize(data)

    def _restore(self, loaded: Loaded) -> None:
        payload = loaded.payload
        try:
            self.module.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise UsageError(
                f"checkpoint step {loaded.step} does not fit this model/optimizer: {exc}"
            ) from None
        batch = int(payload["batch_in_epoch"])
        if payload["global_batch"] != self.config.batch_size:
            # Keep the position in samples; the batch index means something else now.
            batch = batch * int(payload["global_batch"]) // self.config.batch_size
            log.warning(
                "global batch changed %s -> %s: resuming at batch %d of epoch %d",
                payload["global_batch"],
                self.config.batch_size,
                batch,
                payload["epoch"],
            )
        self.position = Position(step=loaded.step, epoch=int(payload["epoch"]), batch=batch)
        self.first_loss = payload.get("first_loss")
        self.resumed_from = loaded.step
        restore_rng(payload["rng"])
        if self.rank:
            # Ranks must not share dropout masks; derive a distinct, reproducible stream.
            torch.manual_seed(self.config.seed + 1_000_003 * self.rank + loaded.step)
        self.metrics.checkpointed(loaded.step)
        if self.rank == 0:
            log.info(
                "resumed from step %d (written at world size %s, now %d)",
                loaded.step,
                payload.get("world_size"),
                self.world,
            )

    def _save(self) -> None:
        if self.checkpoints is None:
            return
        if self.rank == 0:
            self.checkpoints.save(self.position.step, self._payload())
        self.metrics.checkpointed(self.position.step)

    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    # -- training ----------------------------------------------------------------------------

    def run(self) -> int:
        loaded = self._find_checkpoint()
        if loaded is not None:
            self._restore(loaded)
        model: torch.nn.Module = self.module
        ddp: DistributedDataParallel | None = None
        if self.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            ddp = DistributedDataParallel(self.module, device_ids=device_ids)
            compression.register(
                ddp,
                self.config.compression,
                rank=self.config.powersgd_rank,
                start_step=self.config.powersgd_start_step,
                seed=self.config.seed,
            )
            model = ddp
        elif self.config.compression != "none":
            log.info(
                "world size 1: --compression %s has nothing to compress", self.config.compression
            )
        if self.config.amp and self.device.type == "cpu":
            log.info("--amp on CPU: using CPU bf16 autocast")
        try:
            sampler = ElasticDistributedSampler(
                self.task.dataset, self.config.batch_size, self.world, self.rank, self.config.seed
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        stop = StopSignal().install()
        try:
            stopped = self._loop(model, ddp, sampler, stop)
        finally:
            stop.uninstall()
        # Stopped with no signal of its own: another rank's pod is going away (a scale-down, an
        # eviction) and this one is healthy. A signal that lands after the agreement makes it
        # "preempted", which at worst spends a restart: never the other way round.
        return self._finish(stopped, by_peer=stopped and not stop.requested)

    def _loop(
        self,
        model: torch.nn.Module,
        ddp: DistributedDataParallel | None,
        sampler: ElasticDistributedSampler,
        stop: StopSignal,
    ) -> bool:
        config = self.config
        pos = self.position
        self.progress = Progress(config.steps, config.log_every, chief=self.rank == 0)
        stats_device = self._collective_device() if self.distributed else torch.device("cpu")
        # The ranks agree on the loss and on stopping at sync steps only (see `_sync_gap`): the
        # first step, then about every SYNC_INTERVAL_S, every checkpoint, every progress line
        # and the last step.
        next_sync = pos.step + 1
        window_started, window_steps = time.monotonic(), 0
        loss = float("nan")
        while pos.step < config.steps:
            if pos.batch >= sampler.batches_per_epoch:
                pos.epoch += 1
                pos.batch = 0
            sampler.set_epoch(pos.epoch)
            inputs, targets = fetch(self.task.dataset, sampler.batch_tensor(pos.batch), self.device)
            self.optimizer.zero_grad(set_to_none=True)
            loss_sum = self._forward_backward(model, ddp, inputs, targets)
            self.optimizer.step()
            pos.step += 1
            pos.batch += 1
            window_steps += 1
            every = config.checkpoint_every
            checkpoint_due = pos.step == config.steps or bool(every and pos.step % every == 0)
            # A progress line reports the loss of its own step, so log steps sync too.
            log_due = pos.step % config.log_every == 0
            stopping = False
            if pos.step >= next_sync or checkpoint_due or log_due:
                elapsed = time.monotonic() - window_started
                stats = torch.stack(
                    [
                        loss_sum.detach().to(stats_device, torch.float64),
                        torch.tensor(1.0 if stop.requested else 0.0, dtype=torch.float64,
                                     device=stats_device),
                        torch.tensor(elapsed / window_steps, dtype=torch.float64,
                                     device=stats_device),
                    ]
                )  # fmt: skip
                if self.distributed:
                    # One small allreduce: the global loss of this step, agreement on stopping
                    # (a rank that stops alone would leave the others hanging in the next
                    # allreduce) and the mean step time, which sets the next sync step.
                    dist.all_reduce(stats)
                loss = float(stats[0]) / config.batch_size
                stopping = bool(stats[1] > 0)
                next_sync = pos.step + _sync_gap(float(stats[2]) / self.world)
                window_started, window_steps = time.monotonic(), 0
                if self.first_loss is None:
                    self.first_loss = loss
                # The gauges move at sync steps, together on every rank: a scrape never sees
                # one rank's step with another step's loss, and a tiny model's step pays nothing.
                self.metrics.loss.set(loss)
                self.metrics.step.set(pos.step)
                self.metrics.epoch.set(pos.epoch)
                self.metrics.samples_per_second.set(self.progress.samples_per_second())
            self.progress.record(pos.step, loss, config.batch_size, self.world, pos.epoch)
            if stopping or checkpoint_due:
                self._save()
            if stopping:
                if self.distributed:
                    dist.barrier()  # keep every rank alive until rank 0's file is on disk
                return True
            if config.step_delay:
                time.sleep(config.step_delay)  # demo pacing only, never synchronisation
        return False

    def _forward_backward(
        self,
        model: torch.nn.Module,
        ddp: DistributedDataParallel | None,
        inputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        """Backward of this rank's share, weighted to make the DDP mean the global-batch mean;
        returns the sum of per-sample losses (for logging), as a tensor: reading it would make
        a GPU wait for the step on every step, and only sync steps read it."""
        count = len(targets)
        micro = self.config.micro_batch or count
        if micro >= count:  # one micro-batch: the whole share, without slicing it
            chunks = [(inputs, targets)]
        else:
            chunks = [
                (inputs[start : start + micro], targets[start : start + micro])
                for start in range(0, count, micro)
            ]
        total: torch.Tensor | None = None
        for i, (x, y) in enumerate(chunks):
            last = i == len(chunks) - 1
            sync = contextlib.nullcontext() if (last or ddp is None) else ddp.no_sync()
            with sync:
                with autocast(self.config.amp, self.device):
                    loss = self.task.loss_fn(model(x), y)
                weight = len(y) * self.world / self.config.batch_size
                # Equal shares weigh exactly 1: no extra op per step then (a tiny model's step
                # is a millisecond, and every op counts against plain DDP).
                scaled = loss.float() if weight == 1.0 else loss.float() * weight
                scaled.backward()
            part = loss.detach() * len(y)
            total = part if total is None else total + part
        if total is None:  # the sampler never gives a rank an empty share
            raise UsageError("empty batch")
        return total

    def _finish(self, stopped: bool, by_peer: bool = False) -> int:
        regroup = by_peer and self.regroup_exit is not None
        if self.rank == 0:
            progress = self.progress
            print_summary(
                {
                    "status": "regroup" if regroup else "preempted" if stopped else "completed",
                    "mode": "ddp",
                    "steps": self.position.step,
                    "epoch": self.position.epoch,
                    "first_loss": self.first_loss,
                    "final_loss": progress.last_loss,
                    "world_size": self.world,
                    "samples_per_second": round(progress.samples_per_second(), 3),
                    "resumed_from_step": self.resumed_from,
                    "restarts": self.restarts,
                    "compression": self.config.compression,
                    "checkpoint_step": self.position.step if self.checkpoints else None,
                }
            )
        if regroup and self.regroup_exit is not None:
            log.info("a peer stopped on purpose: exit %d to re-rendezvous", self.regroup_exit)
            return self.regroup_exit
        return EXIT_PREEMPTED if stopped else EXIT_OK


def _serialize(loaded: Loaded | None) -> bytes:
    buffer = io.BytesIO()
    torch.save(None if loaded is None else (loaded.step, loaded.payload), buffer)
    return buffer.getvalue()


def _deserialize(data: bytes) -> Loaded | None:
    value = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    return None if value is None else Loaded(step=value[0], payload=value[1])


def _broadcast_bytes(data: bytes | None, src: int, device: torch.device) -> bytes:
    """Broadcast a byte string from `src` (dist.broadcast_object_list needs numpy, which this
    image does not ship)."""
    size = torch.tensor([len(data) if data is not None else 0], dtype=torch.long, device=device)
    dist.broadcast(size, src=src)
    if data is not None:
        buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device)
    else:
        buffer = torch.empty(int(size.item()), dtype=torch.uint8, device=device)
    dist.broadcast(buffer, src=src)
    host = buffer.cpu().contiguous()
    return ctypes.string_at(host.data_ptr(), host.numel())
