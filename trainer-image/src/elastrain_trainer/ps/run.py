"""Start a ps-mode process: serve a shard on this ps's address, or run a worker against them.

Each ps-i listens on its own address from the cluster spec (``transport.ShardServer``); a
worker is a client of every ps. There is no group to join or leave, so workers may start late,
leave early, crash and be replaced while the job runs. A ps that dies takes its shard's
in-memory state with it: losing a ps means restarting the job, which resumes from the shards'
checkpoints.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from elastrain_trainer.checkpoint import CheckpointDir
from elastrain_trainer.cluster import ClusterSpec
from elastrain_trainer.config import TrainConfig
from elastrain_trainer.data import fetch
from elastrain_trainer.errors import EXIT_OK, EXIT_PREEMPTED
from elastrain_trainer.metrics import TrainerMetrics
from elastrain_trainer.ps import server
from elastrain_trainer.ps.layout import PushPlan, assign_shards, evaluation_indices
from elastrain_trainer.ps.transport import ShardServer
from elastrain_trainer.ps.worker import Worker
from elastrain_trainer.runtime import StopSignal
from elastrain_trainer.task import Task, TaskContext, TaskFactory, build_task

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0


def run_ps(config: TrainConfig, factory: TaskFactory, cluster: ClusterSpec) -> int:
    """Run this process's ps-mode role to completion; returns the exit code."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    workers = len(cluster.workers)
    ctx = TaskContext(
        seed=config.seed,
        features=config.features,
        samples=config.samples,
        noise=config.noise,
        rank=cluster.index,
        world_size=workers,
    )
    task = build_task(factory, ctx)
    plan = PushPlan(
        workers=workers,
        global_batch=config.batch_size,
        steps=config.steps,
        num_samples=len(task.dataset),  # type: ignore[arg-type]
        seed=config.seed,
    )
    sizes = {n: p.numel() for n, p in task.model.named_parameters()}
    owner = assign_shards(sizes, len(cluster.ps))
    metrics = TrainerMetrics(cluster.role, cluster.index)
    metrics.world_size.set(workers)
    metrics.total_steps.set(config.steps)
    metrics.serve(config.metrics_port)
    if cluster.is_ps:
        shard = _build_shard(config, cluster, task, plan, owner, metrics)
        me = cluster.ps[cluster.index]
        listener = ShardServer(me.port, server.handlers(shard)).start()
        log.info("ps-%d listening on port %d", cluster.index, listener.port)
        return _serve(shard, listener)
    return Worker(cluster, config, task, plan, owner, metrics).run()


def _build_shard(
    config: TrainConfig,
    cluster: ClusterSpec,
    task: Task,
    plan: PushPlan,
    owner: dict[str, int],
    metrics: TrainerMetrics,
) -> server.ParameterShard:
    """This ps's parameters, restored from its checkpoint directory when one exists."""
    params = {n: p for n, p in task.model.named_parameters() if owner[n] == cluster.index}
    checkpoints = (
        CheckpointDir(Path(config.checkpoint_dir) / f"ps-{cluster.index}", config.keep_checkpoints)
        if config.checkpoint_dir
        else None
    )
    shard = server.ParameterShard(cluster.index, params, config, plan, checkpoints, metrics)
    resumed = shard.restore()
    if cluster.index == 0 and not resumed:
        # The untouched model is the initial one: its loss is the job's first_loss.
        with torch.no_grad():
            indices = evaluation_indices(plan.num_samples).tolist()
            inputs, targets = fetch(task.dataset, indices, torch.device("cpu"))
            shard.ledger.first_loss = float(task.loss_fn(task.model(inputs), targets))
    return shard


def _serve(shard: server.ParameterShard, listener: ShardServer) -> int:
    """Serve until every worker of the spec has finished, or a signal says stop; then stop
    serving (the last answers written, nothing applied after) and checkpoint."""
    stop = StopSignal().install()
    log.info("ps-%d serving %d tensors", shard.index, len(shard.names))
    try:
        while not shard.finished.wait(timeout=PROBE_INTERVAL_S):
            if stop.requested:
                break
    finally:
        stop.uninstall()
        listener.stop()
    shard.save_now()
    if stop.requested and not shard.finished.is_set():
        log.warning(
            "ps-%d stopped by signal at version %d (checkpointed)", shard.index, shard.version
        )
        return EXIT_PREEMPTED
    log.info("ps-%d done: every worker finished", shard.index)
    return EXIT_OK
