"""The composition root: everything one operator run needs, built in one place.

kopf's startup handler calls :func:`start` once the indexes exist and keeps the returned
:class:`Runtime` in kopf's ``memo``, which kopf hands to every handler; the cleanup handler
calls :meth:`Runtime.stop`. Nothing else constructs these objects, so a test can build a
Runtime around a fake API client and drive the very handlers and workers that production runs.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

import kopf

from elastrain.api.kinds import POD_GROUP
from elastrain.controller.config import OperatorConfig
from elastrain.controller.expectations import Expectations
from elastrain.controller.monitor import Monitor, ProgressReader
from elastrain.controller.queue import WorkQueue
from elastrain.controller.reconcile import Reconciler
from elastrain.controller.relist import GhostSweeper
from elastrain.controller.store import JobKey, Store
from elastrain.controller.workers import Workers
from elastrain.kube.client import Kube
from elastrain.kube.discovery import CrdProbe
from elastrain.kube.events import EventRecorder
from elastrain.metrics.registry import Metrics

log = logging.getLogger(__name__)

# How long a status write that only changes pod counts or condition messages may wait for the
# next one (``Reconciler``): long enough to fold a job's pods starting or finishing into one
# write, short enough that `kubectl get` never looks behind.
STATUS_HOLD_SECONDS = 2.0


@dataclass
class Runtime:
    """What lives for one operator run; the handlers read it from ``memo.runtime``."""

    config: OperatorConfig
    metrics: Metrics
    queue: WorkQueue[JobKey]
    expectations: Expectations
    kube: Kube
    store: Store
    pod_groups: CrdProbe
    recorder: EventRecorder
    reconciler: Reconciler
    workers: Workers
    monitor: Monitor
    sweeper: GhostSweeper
    metrics_server: Any = None

    async def stop(self) -> None:
        """Cancel the workers and the monitor, close the metrics server and the API client."""
        await self.monitor.stop()
        await self.sweeper.stop()
        await self.workers.stop()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        self.kube.close()


def _serve_metrics(metrics: Metrics, port: int) -> Any:
    if not port:
        return None
    try:
        server = metrics.serve(port)
    except OSError as exc:
        # kopf would retry a failing startup forever; a taken port will not free itself.
        raise kopf.PermanentError(f"metrics port {port}: {exc}") from exc
    log.info("metrics on :%d/metrics", port)
    return server


def start(config: OperatorConfig, store: Store, kube: Kube | None = None) -> Runtime:
    """Serve metrics, connect (``kube`` or the environment's credentials), start the workers.

    Call it on the event loop: the workers are tasks of the running loop.
    """
    metrics = Metrics()
    server = _serve_metrics(metrics, config.metrics_port)
    try:
        if kube is None:
            kube = Kube.from_environment(config.kube_qps, config.kube_burst)
    except BaseException:
        # kopf retries a failed startup: the next attempt must find the port free again.
        if server is not None:
            server.shutdown()
            server.server_close()
        raise
    queue: WorkQueue[JobKey] = WorkQueue(on_depth=metrics.workqueue_depth.set)
    expectations = Expectations()
    pod_groups = CrdProbe(kube, POD_GROUP)
    recorder = EventRecorder(kube, host=socket.gethostname())
    progress = (
        ProgressReader(store, queue.add, config.progress_interval)
        if config.progress_interval > 0
        else None
    )
    reconciler = Reconciler(
        kube,
        store,
        recorder,
        metrics,
        pod_groups,
        expectations,
        progress=progress.sample if progress is not None else None,
        stall_after=config.stall_after or None,
        status_hold=STATUS_HOLD_SECONDS,
    )
    workers = Workers(queue, reconciler, recorder, metrics, config.workers)
    workers.start()
    monitor = Monitor(store, metrics.cluster, progress)
    monitor.start()
    sweeper = GhostSweeper(
        kube, store, queue.add, on_ghost=lambda kind: metrics.index_ghosts.labels(kind).inc()
    )
    return Runtime(
        config=config,
        metrics=metrics,
        queue=queue,
        expectations=expectations,
        kube=kube,
        store=store,
        pod_groups=pod_groups,
        recorder=recorder,
        reconciler=reconciler,
        workers=workers,
        monitor=monitor,
        sweeper=sweeper,
        metrics_server=server,
    )
