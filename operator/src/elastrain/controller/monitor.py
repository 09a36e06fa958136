"""Background loops that watch running jobs between reconciles: training progress, and the
cluster gauges.

**Progress.** Every ``--progress-interval`` seconds the operator reads worker 0's metrics
endpoint (chief 0's, for a job with a chief): the container port named ``metrics`` at the
pod's IP, the same port the chart's PodMonitor scrapes. A trainer's step, loss and throughput
are job-global, so one rank-0 reading describes the job. When a reading differs from the last
one, it is kept and the job is enqueued; the planner turns it into ``status.progress``
(``planner.training``). So a job costs one HTTP GET to its own pod per interval and at most one
status write per interval, and no API request at all beyond that write; training pods need no
RBAC, and nothing in them has to know where the operator is. The price: the operator must
reach pod IPs (true in-cluster; a NetworkPolicy that isolates training pods must admit it),
and a trainer without a ``metrics`` port simply reports no progress.

**Gauges.** Every few seconds the loop summarises the cached jobs and pods into the gauges of
``metrics.cluster`` (pods by role and phase, GPUs requested, the oldest Pending pod, stalled
jobs), on the event loop, where the caches are consistent.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from elastrain.api import constants as c
from elastrain.controller.store import JobKey, Store
from elastrain.metrics.cluster import ClusterCollector, summarize
from elastrain.planner.model import TrainerSample

log = logging.getLogger(__name__)

# Phases in which a job's trainer may be running; others are never read.
_ACTIVE_PHASES = ("Running", "Scaling", "Restarting", "Created")
# Readings in flight at once: bounds sockets and the loop's time per round.
_CONCURRENCY = 16
_READ_TIMEOUT_SECONDS = 3.0
_GAUGE_INTERVAL_SECONDS = 5.0
# The trainer's gauges (elastrain_trainer.metrics) and the sample fields they fill.
_FIELDS = {
    "elastrain_trainer_step": "step",
    "elastrain_trainer_total_steps": "total_steps",
    "elastrain_trainer_loss": "loss",
    "elastrain_trainer_samples_per_second": "samples_per_second",
    "elastrain_trainer_world_size": "world_size",
}


def progress_target(job_name: str, pods: list[dict[str, Any]]) -> str | None:
    """``ip:port`` of the job's rank-0 metrics endpoint, or None when there is none to read.

    Rank 0 lives on chief 0 when the job has a chief, else on worker 0; the pod must be
    Running with an IP and declare a container port named ``metrics``.
    """
    by_role: dict[str, dict[str, Any]] = {}
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(c.LABEL_REPLICA_INDEX) == "0":
            by_role[str(labels.get(c.LABEL_REPLICA_TYPE))] = pod
    found = by_role.get(c.ROLE_CHIEF) or by_role.get(c.ROLE_WORKER)
    if found is None:
        return None
    pod = found
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if status.get("phase") != "Running" or not isinstance(ip, str) or not ip:
        return None
    port = metrics_port(pod.get("spec") or {})
    if port is None:
        return None
    host = f"[{ip}]" if ":" in ip else ip
    return f"{host}:{port}"


def metrics_port(pod_spec: Mapping[str, Any]) -> int | None:
    """The container port named ``metrics`` in ``pod_spec``, if any."""
    for ctr in pod_spec.get("containers") or []:
        for port in (ctr.get("ports") or []) if isinstance(ctr, dict) else []:
            if isinstance(port, dict) and port.get("name") == c.METRICS_PORT_NAME:
                number = port.get("containerPort")
                if isinstance(number, int) and 0 < number < 65536:
                    return number
    return None


def parse_sample(text: str, at: datetime) -> TrainerSample | None:
    """The trainer's reading in a ``/metrics`` text; None without ``elastrain_trainer_step``.

    Each gauge is taken at its largest value over the labelled series (rank 0 serves one
    series per gauge; a pod with several local ranks serves one endpoint per rank).
    """
    values: dict[str, float] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError:
        return None
    for family in families:
        name = _FIELDS.get(family.name)
        if name is None:
            continue
        for sample in family.samples:
            value = float(sample.value)
            if math.isfinite(value):
                values[name] = max(values.get(name, value), value)
    if "step" not in values:
        return None

    def as_int(key: str) -> int | None:
        v = values.get(key)
        return int(v) if v is not None and v >= 0 else None

    return TrainerSample(
        at=at,
        step=int(values["step"]),
        total_steps=as_int("total_steps"),
        loss=values.get("loss"),
        samples_per_second=values.get("samples_per_second"),
        world_size=as_int("world_size"),
    )


def _same(a: TrainerSample, b: TrainerSample) -> bool:
    keys = ("step", "total_steps", "loss", "samples_per_second", "world_size")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


class ProgressReader:
    """Reads rank 0's metrics of every active job; keeps the newest differing reading."""

    def __init__(self, store: Store, enqueue: Callable[[JobKey], None], interval: float) -> None:
        self._store = store
        self._enqueue = enqueue
        self.interval = interval
        self._samples: dict[JobKey, TrainerSample] = {}
        self._session: aiohttp.ClientSession | None = None

    def sample(self, key: JobKey) -> TrainerSample | None:
        """The newest reading of ``key``'s trainer (what the reconcile hands the planner)."""
        return self._samples.get(key)

    async def read_all(self) -> None:
        """One round: read every active job's endpoint, enqueue the jobs whose values changed."""
        keys = self._store.job_keys()
        known = set(keys)
        for gone in [k for k in self._samples if k not in known]:
            del self._samples[gone]
        targets: list[tuple[JobKey, str]] = []
        for key in keys:
            job = self._store.job(key)
            phase = ((job or {}).get("status") or {}).get("phase")
            if phase not in _ACTIVE_PHASES:
                continue
            target = progress_target(key[1], self._store.pods(key))
            if target is not None:
                targets.append((key, target))
        gate = asyncio.Semaphore(_CONCURRENCY)
        await asyncio.gather(*(self._read(key, target, gate) for key, target in targets))

    async def _read(self, key: JobKey, target: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            text = await self._get(f"http://{target}/metrics")
        if text is None:
            return
        sample = parse_sample(text, datetime.now(UTC))
        if sample is None:
            return
        old = self._samples.get(key)
        if old is not None and _same(old, sample):
            return  # unchanged: no status write; stall detection runs on the planner's timer
        self._samples[key] = sample
        self._enqueue(key)

    async def _get(self, url: str) -> str | None:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=_READ_TIMEOUT_SECONDS)
            self._session = aiohttp.ClientSession(timeout=timeout)
        try:
            async with self._session.get(url) as resp:
                if resp.status != 200:
                    log.debug("progress: %s answered %d", url, resp.status)
                    return None
                return await resp.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.debug("progress: %s unreadable: %s", url, exc)
            return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Monitor:
    """Runs the progress reader (if enabled) and the gauge refresh as tasks of the loop."""

    def __init__(
        self, store: Store, collector: ClusterCollector, progress: ProgressReader | None
    ) -> None:
        self._store = store
        self._collector = collector
        self.progress = progress
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._gauges(), name="elastrain-gauges"))
        if self.progress is not None:
            task = asyncio.create_task(self._progress(self.progress), name="elastrain-progress")
            self._tasks.append(task)

    def refresh_gauges(self) -> None:
        """Summarise the caches into the cluster gauges now."""
        store = self._store
        jobs = [(job, store.pods(key)) for key in store.job_keys() if (job := store.job(key))]
        self._collector.update(summarize(jobs, datetime.now(UTC)))

    async def _gauges(self) -> None:
        while True:
            try:
                self.refresh_gauges()
            except Exception:  # a malformed cached object must not stop the gauges for good
                log.exception("refreshing the cluster gauges failed")
            await asyncio.sleep(_GAUGE_INTERVAL_SECONDS)

    @staticmethod
    async def _progress(reader: ProgressReader) -> None:
        while True:
            try:
                await reader.read_all()
            except Exception:
                log.exception("reading training progress failed")
            await asyncio.sleep(reader.interval)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.progress is not None:
            await self.progress.close()
