"""One parameter-server shard: owns some parameters and their optimizer, applies pushes.

Requests are served on threads (``transport.ShardServer``), so every state change happens
under one lock. Each request names its worker. The shard serves until every worker of the
spec has said ``finish``: a worker that crashes is replaced by the operator (however long its
back-off or scheduling takes), and its replacement joins and finishes; a job that ends some
other way has its ps stopped by the operator.
ps-0 additionally hands out push tickets (the job's data position and step count) and keeps the
job-level facts: first loss, worker joins, throughput, and the pushes finished with their losses,
which every worker reports when it asks for its next ticket. Those facts travel back with each
ticket, so that each worker's metrics show the job's progress, not the worker's own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from elastrain_trainer.checkpoint import CheckpointDir
from elastrain_trainer.config import TrainConfig
from elastrain_trainer.errors import UsageError
from elastrain_trainer.metrics import TrainerMetrics
from elastrain_trainer.ps.layout import PushPlan
from elastrain_trainer.runtime import build_optimizer

log = logging.getLogger(__name__)


@dataclass
class JobLedger:
    """ps-0's job-wide bookkeeping (checkpointed with its shard)."""

    tickets: int = 0
    resumed_tickets: int = 0
    first_loss: float | None = None
    joins: dict[int, int] = field(default_factory=dict)
    first_ticket_at: float | None = None
    last_ticket_at: float | None = None
    # Pushes whose worker reported them done (applied, or dropped as too stale); a resumed job
    # starts from its checkpoint's tickets, as every one of those was done before the save.
    finished: int = 0
    # Losses of the latest finished pushes, one global batch of them (set up by the shard).
    recent_losses: deque[float] = field(default_factory=deque)

    @property
    def restarts(self) -> int:
        """Worker re-joins: a worker index seen more than once came back after dying."""
        return sum(count - 1 for count in self.joins.values())


class ParameterShard:
    """Parameters `names` of the model, their optimizer and the async-SGD update rule."""

    def __init__(
        self,
        index: int,
        params: Mapping[str, torch.Tensor],
        config: TrainConfig,
        plan: PushPlan,
        checkpoints: CheckpointDir | None,
        metrics: TrainerMetrics,
    ) -> None:
        self.index = index
        self.names = sorted(params)
        self.params = {n: torch.nn.Parameter(params[n].detach().clone()) for n in self.names}
        self.optimizer = build_optimizer(config, (self.params[n] for n in self.names))
        self.staleness = config.staleness
        self.plan = plan
        self.checkpoint_every = config.checkpoint_every * plan.workers
        self.checkpoints = checkpoints
        self.metrics = metrics
        self.version = 0
        self.ledger = JobLedger(recent_losses=deque(maxlen=plan.workers))
        self.done: set[int] = set()
        self.finished = threading.Event()
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()

    # -- requests (``handlers`` maps the wire's method names to these) ----------------------

    def pull(self, worker: int) -> tuple[int, dict[str, torch.Tensor]]:
        with self._lock:
            return self.version, {n: p.detach().clone() for n, p in self.params.items()}

    def push(self, worker: int, version: int, grads: dict[str, torch.Tensor]) -> bool:
        """Apply one worker's gradient unless it is staler than the bound; True if applied."""
        snapshot = None
        with self._lock:
            if self.staleness >= 0 and self.version - version > self.staleness:
                self.metrics.stale_gradients.inc()
                return False
            for name in self.names:
                self.params[name].grad = grads[name] * self.plan.weight
            self.optimizer.step()
            self.version += 1
            self.metrics.step.set(self.version)
            if self.checkpoint_every and self.version % self.checkpoint_every == 0:
                snapshot = self._payload()
        if snapshot is not None:
            self._write(snapshot)
        return True

    def next_ticket(
        self, worker: int, done_loss: float | None
    ) -> tuple[int | None, dict[str, Any]]:
        """ps-0: the next push ticket (None when the job's pushes are all handed out) and the
        job's facts after counting the caller's previous push, whose loss is `done_loss` (None
        on a worker's first request)."""
        with self._lock:
            ledger = self.ledger
            if done_loss is not None:
                ledger.finished += 1
                ledger.recent_losses.append(done_loss)
            if ledger.tickets >= self.plan.total_pushes:
                return None, self.job_facts()
            now = time.monotonic()
            if ledger.first_ticket_at is None:
                ledger.first_ticket_at = now
            ledger.last_ticket_at = now
            ledger.tickets += 1
            self.metrics.epoch.set(self.plan.epoch_of(ledger.tickets - 1))
            return ledger.tickets - 1, self.job_facts()

    def join(self, worker: int, again: bool = False) -> dict[str, Any]:
        """A worker starts, or starts again: a replacement takes the place of one that
        crashed. ``again``: the same worker reconnecting after this ps restarted (not a
        restart of the worker's)."""
        with self._lock:
            if not again:
                self.ledger.joins[worker] = self.ledger.joins.get(worker, 0) + 1
            self.done.discard(worker)
            self.metrics.restarts.set(self.ledger.restarts)
            self.metrics.rendezvous_round.set(self.ledger.restarts)
            return self.job_facts()

    def finish(self, worker: int) -> dict[str, Any]:
        with self._lock:
            self.done.add(worker)
            if len(self.done) >= self.plan.workers:
                self.finished.set()
            return self.job_facts()

    def job_facts(self) -> dict[str, Any]:
        """ps-0's job-wide figures (call with the lock held). `step` counts global steps done:
        pushes finished / workers, as one global step is one push per worker; `loss` is the
        mean loss of the latest finished pushes, one global batch of samples (None before the
        first); `samples_per_second` is of all workers together, since this ps-0 started."""
        ledger = self.ledger
        elapsed = (ledger.last_ticket_at or 0.0) - (ledger.first_ticket_at or 0.0)
        pushes = ledger.tickets - ledger.resumed_tickets
        losses = ledger.recent_losses
        return {
            "tickets": ledger.tickets,
            "resumed_tickets": ledger.resumed_tickets,
            "first_loss": ledger.first_loss,
            "restarts": ledger.restarts,
            "samples_per_second": pushes * self.plan.push_batch / elapsed if elapsed > 0 else 0.0,
            "step": ledger.finished // self.plan.workers,
            "loss": sum(losses) / len(losses) if losses else None,
        }

    # -- checkpoints ------------------------------------------------------------------------

    def _payload(self) -> dict[str, Any]:
        ledger = self.ledger
        return {
            "version": self.version,
            "names": self.names,
            "params": {n: p.detach().clone() for n, p in self.params.items()},
            "optimizer": self.optimizer.state_dict(),
            "ledger": {"tickets": ledger.tickets, "first_loss": ledger.first_loss},
            "saved_at": time.time(),
        }

    def _write(self, payload: dict[str, Any]) -> None:
        if self.checkpoints is None:
            return
        # Pushes keep being served while the file is written; concurrent saves are skipped.
        if not self._save_lock.acquire(blocking=False):
            return
        try:
            self.checkpoints.save(int(payload["version"]), payload)
            self.metrics.checkpointed(int(payload["version"]))
        finally:
            self._save_lock.release()

    def save_now(self) -> None:
        """Final / SIGTERM checkpoint: waits for a save in progress instead of skipping."""
        if self.checkpoints is None:
            return
        with self._lock:
            payload = self._payload()
        with self._save_lock:
            self.checkpoints.save(self.version, payload)
            self.metrics.checkpointed(self.version)

    def restore(self) -> bool:
        """Load this shard's newest checkpoint; False when there is none."""
        loaded = self.checkpoints.load_latest() if self.checkpoints else None
        if loaded is None:
            return False
        payload = loaded.payload
        if payload["names"] != self.names:
            raise UsageError(
                f"ps-{self.index} checkpoint holds other parameters than this shard "
                "(different model or ps count); use a fresh --checkpoint-dir"
            )
        with torch.no_grad():
            for name in self.names:
                self.params[name].copy_(payload["params"][name])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.version = int(payload["version"])
        self.ledger.tickets = self.ledger.resumed_tickets = int(payload["ledger"]["tickets"])
        self.ledger.finished = self.ledger.tickets
        self.ledger.first_loss = payload["ledger"]["first_loss"]
        self.metrics.checkpointed(loaded.step)
        log.info("ps-%d resumed at version %d", self.index, self.version)
        return True


def handlers(shard: ParameterShard) -> dict[str, Any]:
    """The wire's method names (``transport``) and what serves them."""
    return {
        "pull": shard.pull,
        "push": shard.push,
        "ticket": shard.next_ticket,
        "join": shard.join,
        "finish": shard.finish,
    }
