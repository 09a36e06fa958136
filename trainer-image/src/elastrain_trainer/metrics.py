"""Prometheus metrics of one trainer process (every rank serves its own, labelled role/rank).

A private registry per process keeps the library usable in-process (tests, notebooks) without
clashing with the global default registry. If the port is taken the trainer logs and carries on:
losing a metrics endpoint must never cost a training run.

The operator scrapes one endpoint per job, worker 0's first process, to fill
`status.progress`; so `step`, `total_steps`, `loss`, `samples_per_second` and `world_size` hold
*job-wide* values on every worker process in both modes (see docs/trainer.md#metrics for what
each means in DDP and in ps mode), never figures of one rank alone.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

log = logging.getLogger(__name__)

_LABELS = ("role", "rank")


class TrainerMetrics:
    """The gauges the operator, the demo and dashboards read."""

    def __init__(self, role: str, rank: int) -> None:
        self.registry = CollectorRegistry()
        labels = {"role": role, "rank": str(rank)}

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, _LABELS, registry=self.registry).labels(**labels)

        self.step = gauge(
            "elastrain_trainer_step",
            "Global steps of the job done (DDP: optimizer steps; ps worker: pushes finished / "
            "workers; ps: update version of its shard)",
        )
        self.total_steps = gauge(
            "elastrain_trainer_total_steps",
            "The job's --steps target: progress is step / total_steps",
        )
        self.epoch = gauge("elastrain_trainer_epoch", "Current epoch over the data set")
        self.loss = gauge(
            "elastrain_trainer_loss",
            "Latest training loss of the job (DDP: global-batch mean; ps worker: mean of the "
            "job's latest pushes, one global batch)",
        )
        self.samples_per_second = gauge(
            "elastrain_trainer_samples_per_second",
            "Training throughput of the whole job, all ranks or workers together",
        )
        self.world_size = gauge("elastrain_trainer_world_size", "Ranks (DDP) or workers (ps)")
        self.restarts = gauge(
            "elastrain_trainer_restarts",
            "DDP: TORCHELASTIC_RESTART_COUNT, failure restarts of this pod's torchrun agent; "
            "ps: worker re-joins seen by ps-0",
        )
        self.rendezvous_round = gauge(
            "elastrain_trainer_rendezvous_round",
            "DDP: round of the job's c10d rendezvous this process group was formed in (0: the "
            "first; every re-rendezvous, failure or scale, adds one); ps: worker re-joins",
        )
        self.last_checkpoint_step = gauge(
            "elastrain_trainer_last_checkpoint_step", "Step of the newest checkpoint (-1: none)"
        )
        self.last_checkpoint_step.set(-1)
        self._last_checkpoint_time: float | None = None
        age = gauge(
            "elastrain_trainer_last_checkpoint_age_seconds",
            "Seconds since the newest checkpoint was written or loaded (-1: none)",
        )
        age.set_function(self._checkpoint_age)
        self.stale_gradients = Counter(
            "elastrain_trainer_stale_gradients",
            "ps mode: gradient pushes rejected by the staleness bound",
            _LABELS,
            registry=self.registry,
        ).labels(**labels)

    def _checkpoint_age(self) -> float:
        """Computed at scrape time, so a stalled trainer still shows its checkpoint ageing."""
        if self._last_checkpoint_time is None:
            return -1.0
        return time.time() - self._last_checkpoint_time

    def checkpointed(self, step: int) -> None:
        """A checkpoint of `step` was written (or loaded on resume): the age restarts at 0."""
        self.last_checkpoint_step.set(step)
        self._last_checkpoint_time = time.time()

    def serve(self, port: int) -> None:
        """Start the HTTP endpoint on `port` (0: disabled)."""
        if port <= 0:
            return
        try:
            start_http_server(port, registry=self.registry)
        except OSError as exc:
            log.warning("metrics endpoint on port %d not started: %s", port, exc)
