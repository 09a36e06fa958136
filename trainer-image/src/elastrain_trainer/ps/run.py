"""Start a ps-mode process: join the RPC group, then serve a shard or run a worker.

RPC membership: ps-i takes rank i and ps-0's `host:port` from the cluster spec hosts the
rendezvous store. The group is dynamic (`init_rpc(world_size=None)`), so workers may join late
and leave early; a worker draws a fresh rank (and name) from a counter in that store each time it
joins, because TensorPipe never lets a name that left by crashing be reused. What the torch
version does not allow: a ps that dies cannot rejoin under its name while ps-0's store lives, so
losing a ps means restarting the job, which resumes from the shards' checkpoints. Leaving goes
through `membership`, which keeps a leave from deadlocking with a join in progress.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.rpc as rpc

from elastrain_trainer.checkpoint import CheckpointDir
from elastrain_trainer.cluster import ClusterSpec
from elastrain_trainer.config import TrainConfig
from elastrain_trainer.data import fetch
from elastrain_trainer.errors import EXIT_OK, EXIT_PREEMPTED
from elastrain_trainer.metrics import TrainerMetrics
from elastrain_trainer.ps import server
from elastrain_trainer.ps.layout import PushPlan, assign_shards, evaluation_indices
from elastrain_trainer.ps.membership import MembershipStore, leave_token_held
from elastrain_trainer.ps.worker import Worker, ps_name
from elastrain_trainer.runtime import StopSignal
from elastrain_trainer.task import Task, TaskContext, TaskFactory, build_task

log = logging.getLogger(__name__)

RPC_TIMEOUT_S = 120
PROBE_INTERVAL_S = 1.0
LEAVE_TIMEOUT_S = 60
JOIN_TIMEOUT = timedelta(minutes=10)
_RANK_COUNTER = "elastrain/ps/worker-joins"


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
    shard = _build_shard(config, cluster, task, plan, owner, metrics) if cluster.is_ps else None
    master = cluster.ps[0]
    options = rpc.TensorPipeRpcBackendOptions(
        init_method=f"tcp://{master.host}:{master.port}", rpc_timeout=RPC_TIMEOUT_S
    )
    membership: MembershipStore | None = None
    if shard is not None:
        # Registered before joining: a worker may call us the moment we are in the group.
        server.serve(shard)
        rank, name = cluster.index, ps_name(cluster.index)
    else:
        membership = MembershipStore(master.host, master.port, JOIN_TIMEOUT)
        rank = _draw_worker_rank(membership.raw, len(cluster.ps))
        # No '-' in names: dynamic RPC serialises "name-rank" pairs and a dash breaks parsing.
        name = f"worker{cluster.index}_r{rank}"
    log.info("joining the RPC group at %s:%d as %s (rank %d)", master.host, master.port, name, rank)
    rpc.init_rpc(name, rank=rank, world_size=None, rpc_backend_options=options)
    if membership is None:  # ps-0 hosts the store: it exists once ps-0 has joined
        membership = MembershipStore(master.host, master.port, JOIN_TIMEOUT)
    if shard is not None:
        code = _serve(shard)
        leave(membership, name, graceful=not shard.gone)
        return code
    worker = Worker(cluster, config, task, plan, owner, metrics)
    try:
        return worker.run()
    except Exception:
        worker.group_healthy = False
        raise
    finally:
        leave(membership, name, graceful=worker.group_healthy)


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


def _draw_worker_rank(store: dist.Store, num_ps: int) -> int:
    """A rank no process of this job has used yet (ps ranks come first)."""
    return num_ps - 1 + int(store.add(_RANK_COUNTER, 1))


def _serve(shard: server.ParameterShard) -> int:
    """Serve until every worker of the spec has finished (or is gone), or a signal says stop."""
    stop = StopSignal().install()
    log.info("ps-%d serving %d tensors", shard.index, len(shard.names))
    try:
        while not shard.finished.wait(timeout=PROBE_INTERVAL_S):
            if stop.requested:
                break
            shard.reap()
    finally:
        stop.uninstall()
    shard.save_now()
    if shard.finished.is_set():
        deadline = time.monotonic() + LEAVE_TIMEOUT_S
        while shard.workers_still_joined() and time.monotonic() < deadline:
            time.sleep(PROBE_INTERVAL_S)  # poll: workers leave once their last reply arrived
    if stop.requested and not shard.finished.is_set():
        log.warning(
            "ps-%d stopped by signal at version %d (checkpointed)", shard.index, shard.version
        )
        return EXIT_PREEMPTED
    log.info("ps-%d done: every worker finished", shard.index)
    return EXIT_OK


def leave(membership: MembershipStore, name: str, graceful: bool) -> None:
    """Leave the RPC group.

    Graceful leaving tells every member, so it would fail on a member that crashed: skip it
    then. Otherwise take torch's membership token first on our own store connection (see
    `membership`), so that a worker joining right now cannot deadlock with this leave.
    """
    if graceful:
        try:
            with leave_token_held(membership, name):
                rpc.shutdown(graceful=True)
            return
        except Exception as exc:
            log.warning("graceful RPC leave failed (%s); leaving without telling the group", exc)
    try:
        rpc.shutdown(graceful=False)
    except Exception as exc:  # e.g. a failed graceful shutdown already finalised the agent
        log.debug("RPC shutdown: %s", exc)
