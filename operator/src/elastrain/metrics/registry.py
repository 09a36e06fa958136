"""The operator's Prometheus metrics, in a registry of their own.

Names follow Kubeflow's and Volcano's where those exist (jobs created/succeeded/failed/restarted,
pods created/deleted, Volcano's job-to-pod-creation latency) so dashboards carry over. The
registry is private (not prometheus-client's global one) so tests and several operators in one
process never share counters, and so ``/metrics`` carries only what is documented.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Seconds from job creation to its first pod, or to Running: spans scheduling and image pulls.
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_RECONCILE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """Every metric the operator exports; see docs/operator.md for the reference table."""

    def __init__(self) -> None:
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

    def serve(self, port: int, addr: str = "0.0.0.0") -> Any:
        """Serve ``/metrics`` on ``port`` from a daemon thread; returns the server to shut down."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server


def _condition(status: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any] | None:
    for cond in (status or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return cond
    return None


def condition_status(status: Mapping[str, Any] | None, type_: str) -> tuple[str, str] | None:
    """``(status, reason)`` of the condition ``type_`` in a job status, if present."""
    cond = _condition(status, type_)
    if cond is None:
        return None
    return str(cond.get("status")), str(cond.get("reason") or "")


def condition_field(status: Mapping[str, Any] | None, type_: str, field: str) -> Any:
    """One field of the condition ``type_`` (e.g. its lastTransitionTime), or None."""
    cond = _condition(status, type_)
    return None if cond is None else cond.get(field)
