"""A ps-mode worker: take a ticket, pull parameters, compute a gradient, push it; repeat.

Workers hold no state worth saving: parameters and the data position live on the ps, so a
worker that dies loses at most its in-flight push, and a replacement simply joins and continues
(a worker is a client of each ps, ``transport``: nothing else knows it exists).

A worker's metrics show the job, not the worker: each ticket request reports the previous push's
loss to ps-0 and brings back ps-0's job-wide facts (global steps done, loss of the latest global
batch of pushes, throughput of all workers), which is what the gauges hold. The operator reads
worker 0's endpoint alone: worker-local figures there would show about 1/W of the job's
throughput and the loss of one push. The progress line in the log stays per worker (each pod
has its own log).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from elastrain_trainer.cluster import ClusterSpec
from elastrain_trainer.config import TrainConfig
from elastrain_trainer.data import fetch
from elastrain_trainer.errors import EXIT_OK, EXIT_PREEMPTED, EXIT_PS_LOST
from elastrain_trainer.metrics import TrainerMetrics
from elastrain_trainer.ps.layout import PushPlan, evaluation_indices
from elastrain_trainer.ps.transport import ShardClient, TransportError
from elastrain_trainer.runtime import Progress, StopSignal, print_summary
from elastrain_trainer.task import Task

log = logging.getLogger(__name__)

# A push rejected as stale is recomputed on fresh parameters this many times before the worker
# gives up on that ticket (only reachable with a very tight --staleness and many workers).
MAX_STALE_RETRIES = 8
# How long a worker waits for every ps to accept connections when it starts.
PS_WAIT_S = 600.0
# How long a worker waits for a ps that went away mid-run to come back (restarted in place,
# after the kubelet's crash-loop back-off, at most 5 minutes) before it exits EXIT_PS_LOST.
PS_RETURN_S = 600.0


class Worker:
    def __init__(
        self,
        cluster: ClusterSpec,
        config: TrainConfig,
        task: Task,
        plan: PushPlan,
        owner: dict[str, int],
        metrics: TrainerMetrics,
    ) -> None:
        self.cluster = cluster
        self.config = config
        self.task = task
        self.plan = plan
        self.owner = owner
        self.metrics = metrics
        self.device = torch.device("cpu")
        self.params = dict(task.model.named_parameters())
        self.shards = sorted(set(owner.values()))
        self.clients = {
            s: ShardClient(cluster.ps[s].host, cluster.ps[s].port) for s in range(len(cluster.ps))
        }
        self._pool = ThreadPoolExecutor(max(1, len(self.clients)), thread_name_prefix="ps-call")

    def _call(self, shard: int, method: str, *args: Any) -> Any:
        return self.clients[shard].call(method, self.cluster.index, *args)

    def _each(self, method: str, args: dict[int, tuple[Any, ...]]) -> dict[int, Any]:
        """``method`` on several shards at once (one request each, in parallel)."""
        futures = {s: self._pool.submit(self._call, s, method, *a) for s, a in args.items()}
        return {s: f.result() for s, f in futures.items()}

    def _pull(self) -> dict[int, int]:
        """Fetch every shard's parameters in parallel into the local model; shard -> version."""
        answers = self._each("pull", dict.fromkeys(self.shards, ()))
        versions: dict[int, int] = {}
        with torch.no_grad():
            for shard, (version, values) in answers.items():
                versions[shard] = version
                for name, value in values.items():
                    self.params[name].copy_(value)
        return versions

    def _loss(self, indices: list[int]) -> torch.Tensor:
        inputs, targets = fetch(self.task.dataset, indices, self.device)
        return self.task.loss_fn(self.task.model(inputs), targets)

    def _step(self, ticket: int) -> tuple[float, int]:
        """One push (retried on fresh parameters if stale); (loss, stale rejections)."""
        indices = self.plan.indices(ticket)
        pending = set(self.shards)
        rejected = 0
        loss = torch.tensor(float("nan"))
        for _ in range(MAX_STALE_RETRIES + 1):
            versions = self._pull()
            self.task.model.zero_grad(set_to_none=True)
            loss = self._loss(indices)
            loss.backward()
            pushes = {
                shard: (
                    versions[shard],
                    {n: self._grad(n) for n, owner in self.owner.items() if owner == shard},
                )
                for shard in pending
            }
            pending = {s for s, applied in self._each("push", pushes).items() if not applied}
            rejected += len(pending)
            if not pending:
                break
        else:
            log.warning("ticket %d dropped on %d shard(s): still stale", ticket, len(pending))
        return float(loss.detach()), rejected

    def _grad(self, name: str) -> torch.Tensor:
        grad = self.params[name].grad
        return torch.zeros_like(self.params[name]) if grad is None else grad.detach()

    def run(self) -> int:
        try:
            return self._run()
        except TransportError as exc:
            # Its ps is gone for good: the job restarts from the shards' checkpoints.
            log.error("worker %d lost a parameter server: %s", self.cluster.index, exc)
            return EXIT_PS_LOST
        finally:
            self._pool.shutdown(wait=False)
            for client in self.clients.values():
                client.close()

    def _join(self, wait_s: float, again: bool = False) -> None:
        """Say ``join`` to every ps, waiting up to ``wait_s`` for each to accept connections
        (``again``: reconnecting after a ps went away, not a restart of this worker)."""
        for shard, client in self.clients.items():
            client.wait_until_up(wait_s)
            facts = self._call(shard, "join", again)
            if shard == 0:
                self._publish(facts)

    def _reconnect(self, exc: TransportError) -> None:
        """A ps went away mid-request. One restarted in place (its pod's restartPolicy
        OnFailure) comes back at the same address from its checkpoint: wait for it and go on.
        If it does not come back in ``PS_RETURN_S``, the TransportError ends this worker."""
        log.warning(
            "worker %d lost a parameter server (%s); waiting for it", self.cluster.index, exc
        )
        for client in self.clients.values():
            client.close()
        self._join(PS_RETURN_S, again=True)
        log.info("worker %d reconnected to every parameter server", self.cluster.index)

    def _run(self) -> int:
        index = self.cluster.index
        self._join(PS_WAIT_S)
        log.info("worker %d joined %d parameter server(s)", index, len(self.clients))
        chief = index == 0
        progress = Progress(self.config.steps, self.config.log_every, chief=False)
        stop = StopSignal().install()
        last_logged = -1
        done_loss: float | None = None  # the previous push's, reported with the next request
        try:
            while not stop.requested:
                try:
                    ticket, facts = self._call(0, "ticket", done_loss)
                    self._publish(facts)
                    if ticket is None:
                        break
                    loss, rejected = self._step(ticket)
                except TransportError as exc:
                    self._reconnect(exc)  # the ticket in flight is lost with the ps's state
                    done_loss = None
                    continue
                done_loss = loss
                if rejected:
                    self.metrics.stale_gradients.inc(rejected)
                step = ticket // self.plan.workers + 1
                progress.record(step, loss, self.plan.push_batch, self.plan.workers, 0)
                self.metrics.epoch.set(self.plan.epoch_of(ticket))
                if step // self.config.log_every > last_logged:
                    # Every worker logs (each pod has its own log); only the chief summarises.
                    last_logged = step // self.config.log_every
                    print(
                        f"step {step}/{self.config.steps} loss {loss:.6f} "
                        f"world_size {self.plan.workers} worker {index} "
                        f"samples/s {progress.samples_per_second():.1f} (this worker)",
                        flush=True,
                    )
                if self.config.step_delay:
                    time.sleep(self.config.step_delay)  # demo pacing only
        finally:
            stop.uninstall()
        if stop.requested:
            log.warning("worker %d stopped by signal; its state lives on the ps", index)
            return EXIT_PREEMPTED
        # The chief reads the final parameters before it says finish: a ps stops serving once
        # every worker has (pushes still in flight from the others may land after this read).
        final = self._evaluate() if chief else None
        for shard in sorted(self.clients)[1:]:
            self._call(shard, "finish")
        facts = self._call(0, "finish")
        self._publish(facts)
        if final is not None:
            self._summary(facts, final)
        return EXIT_OK

    def _evaluate(self) -> float:
        """The loss of the current parameters on the fixed evaluation set (as ps-0 computed
        the first one)."""
        self._pull()
        with torch.no_grad():
            return float(self._loss(evaluation_indices(self.plan.num_samples).tolist()))

    def _publish(self, facts: dict[str, Any]) -> None:
        """Set the job-wide gauges from ps-0's facts (see the module docstring)."""
        self.metrics.step.set(facts["step"])
        if facts["loss"] is not None:
            self.metrics.loss.set(facts["loss"])
        self.metrics.samples_per_second.set(facts["samples_per_second"])
        self.metrics.restarts.set(facts["restarts"])
        self.metrics.rendezvous_round.set(facts["restarts"])

    def _summary(self, facts: dict[str, Any], final: float) -> None:
        print_summary(
            {
                "status": "completed",
                "mode": "ps",
                "steps": facts["tickets"] // self.plan.workers,
                "first_loss": facts["first_loss"],
                "final_loss": final,
                "world_size": self.plan.workers,
                "ps_replicas": len(self.cluster.ps),
                "samples_per_second": round(facts["samples_per_second"], 3),
                "resumed_from_step": facts["resumed_tickets"] // self.plan.workers,
                "restarts": facts["restarts"],
                "staleness": self.config.staleness,
            }
        )
