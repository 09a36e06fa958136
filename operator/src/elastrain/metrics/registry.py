"""The operator's Prometheus metrics, in a registry of their own.

Names follow Kubeflow's and Volcano's where those exist (jobs created/succeeded/failed/restarted,
pods created/deleted, Volcano's job-to-pod-creation latency) so dashboards carry over. The
registry is private (not prometheus-client's global one) so tests and several operators in one
process never share counters, and so ``/metrics`` carries only what is documented.

Job counters are fed by :meth:`Metrics.record` from the planner's transitions, so each
transition is counted exactly once: reconciles repeat (every child event, every requeue), and
counting "the job is Failed" per reconcile would over-count. The reconciler records a plan's
transitions only after its status write *succeeded*; that write carries the observed
resourceVersion, so of two operators (or two reconciles) computing the same transition only
one can win it, and only the winner counts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from prometheus_client import (
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

from elastrain.metrics.cluster import ClusterCollector
from elastrain.planner.model import Transition

# Seconds from job creation to its first pod, or to Running: spans scheduling and image pulls.
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Seconds from a failure to its replacement pod (back-off included), or from a scale command
# to the job running complete at the new size (pod start included).
_RECOVERY_BUCKETS = (0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300, 600, 1800)
_RECONCILE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """Every metric the operator exports; see docs/operator.md for the reference table."""

    def __init__(self) -> None:
        # One sample per series: no ``*_created`` timestamps doubling every counter and
        # histogram (prometheus-client's switch is process-wide; the operator owns its process).
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ns = ["namespace"]
        self.jobs_created = Counter(
            "elastrain_jobs_created_total", "TrainingJobs accepted (Created).", ns, registry=r
        )
        self.jobs_succeeded = Counter(
            "elastrain_jobs_succeeded_total", "TrainingJobs that Succeeded.", ns, registry=r
        )
        self.jobs_failed = Counter(
            "elastrain_jobs_failed_total",
            "TrainingJobs that Failed, by the Failed condition's reason.",
            [*ns, "reason"],
            registry=r,
        )
        self.jobs_restarted = Counter(
            "elastrain_jobs_restarted_total",
            "Transitions of a TrainingJob into Restarting, by reason.",
            [*ns, "reason"],
            registry=r,
        )
        self.pods_created = Counter(
            "elastrain_pods_created_total", "Pods created by the operator.", ns, registry=r
        )
        self.pods_deleted = Counter(
            "elastrain_pods_deleted_total", "Pods deleted by the operator.", ns, registry=r
        )
        self.pod_create_failures = Counter(
            "elastrain_pod_create_failures_total",
            "Pod creations refused by the API server, by error kind.",
            [*ns, "error"],
            registry=r,
        )
        self.jobs = Gauge(
            "elastrain_jobs",
            "TrainingJobs currently known, by status.phase.",
            ["phase"],
            registry=r,
        )
        self.workqueue_depth = Gauge(
            "elastrain_workqueue_depth", "Job keys waiting for a reconcile worker.", registry=r
        )
        self.reconcile_duration = Histogram(
            "elastrain_reconcile_duration_seconds",
            "Time of one reconcile (observe, plan, apply).",
            buckets=_RECONCILE_BUCKETS,
            registry=r,
        )
        self.reconcile_errors = Counter(
            "elastrain_reconcile_errors_total",
            "Reconciles that ended in an error and were retried with back-off, by error kind.",
            ["error"],
            registry=r,
        )
        self.index_ghosts = Counter(
            "elastrain_index_ghosts_total",
            "Objects the operator's watch index still held after the API server had deleted "
            "them (a deletion missed across a re-list), found and dropped, by kind.",
            ["kind"],
            registry=r,
        )
        self.job_to_pod_creation = Histogram(
            "elastrain_job_to_pod_creation_seconds",
            "From a job's creationTimestamp to its first pod created (Volcano's latency).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.job_time_to_running = Histogram(
            "elastrain_job_time_to_running_seconds",
            "From a job's creationTimestamp to its first Running condition.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.scale_events = Counter(
            "elastrain_job_scale_events_total",
            "Changes of a TrainingJob's replica counts (kubectl scale, an HPA, an edit), by "
            "direction (up or down).",
            [*ns, "direction"],
            registry=r,
        )
        self.pod_replacement = Histogram(
            "elastrain_pod_replacement_seconds",
            "From the operator seeing a pod fail (or be disrupted) to its replacement pod "
            "created, back-off included, by replica type.",
            ["role"],
            buckets=_RECOVERY_BUCKETS,
            registry=r,
        )
        self.scale_duration = Histogram(
            "elastrain_job_scale_duration_seconds",
            "From a scale command seen by the operator to every pod of the new size running.",
            buckets=_RECOVERY_BUCKETS,
            registry=r,
        )
        self.jobs_stalled_total = Counter(
            "elastrain_job_stalls_total",
            "Times a TrainingJob's Stalled condition turned True (no training step for "
            "--stall-after).",
            ns,
            registry=r,
        )
        # Pods by role and phase, GPUs, pending ages and stalled jobs: read from the
        # operator's caches at scrape time (see ``metrics.cluster``).
        self.cluster = ClusterCollector()
        r.register(self.cluster)
        # The operator process's own health: CPU, memory, file descriptors, Python version.
        r.register(PROCESS_COLLECTOR)
        r.register(PLATFORM_COLLECTOR)
        self._phases: dict[tuple[str, str], str] = {}
        self._phase_lock = threading.Lock()

    def set_job_phase(self, key: tuple[str, str], phase: str | None) -> None:
        """Track one job's phase for the ``elastrain_jobs`` gauge; None forgets the job."""
        with self._phase_lock:
            old = self._phases.pop(key, None)
            if phase is not None:
                self._phases[key] = phase
            if old == phase:
                return
            if old is not None:
                self.jobs.labels(old).dec()
            if phase is not None:
                self.jobs.labels(phase).inc()

    def record(
        self, transitions: Iterable[Transition], namespace: str, created: datetime | None
    ) -> None:
        """Count the ``transitions`` of one written status of a job in ``namespace``.

        ``created`` (the job's creationTimestamp) anchors the latencies; without it they are
        not observed. A job is counted as created, and its time to Running and to its first
        pods observed, only the first time: a resumed job enters Created again and gets new
        pods, but it is the same job, and its suspended time is no operator latency.
        """
        for t in transitions:
            if t.kind == "Created" and t.first_time:
                self.jobs_created.labels(namespace).inc()
            elif t.kind == "Succeeded":
                self.jobs_succeeded.labels(namespace).inc()
            elif t.kind == "Failed":
                self.jobs_failed.labels(namespace, t.reason or "Unknown").inc()
            elif t.kind == "Restarting":
                self.jobs_restarted.labels(namespace, t.reason or "Unknown").inc()
            elif t.kind == "Scaled":
                self.scale_events.labels(namespace, t.reason.lower()).inc()
            elif t.kind == "Stalled":
                self.jobs_stalled_total.labels(namespace).inc()
            elif t.kind == "Replaced" and t.since is not None:
                self.pod_replacement.labels(t.reason).observe(_seconds(t.since, t.at))
            elif t.kind == "ScaleCompleted" and t.since is not None:
                self.scale_duration.observe(_seconds(t.since, t.at))
            if created is None:
                continue
            if t.kind == "Running" and t.first_time:
                self.job_time_to_running.observe(_seconds(created, t.at))
            elif t.kind == "Started" and t.first_time:
                self.job_to_pod_creation.observe(_seconds(created, t.at))

    def serve(self, port: int, addr: str = "0.0.0.0") -> Any:
        """Serve ``/metrics`` on ``port`` from a daemon thread; returns the server to shut down."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server


def _seconds(start: datetime, end: datetime) -> float:
    """Seconds from ``start`` to ``end``, never negative (clocks of two machines may differ)."""
    return max(0.0, (end - start).total_seconds())
