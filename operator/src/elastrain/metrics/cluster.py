"""Gauges of what the operator's caches hold: pods by role and phase, GPUs requested, the
oldest Pending pod, stalled jobs.

They describe the cluster as it is, not events, so they are computed from the cached jobs and
pods rather than counted: :func:`summarize` is a pure function over them, run on the event
loop (``controller.monitor``) every few seconds, and :class:`ClusterCollector` serves the
newest summary at scrape time. The scrape runs in prometheus-client's HTTP thread, which must
never iterate kopf's indexes while the loop changes them; swapping one immutable summary is
safe. Labels are bounded: role, phase and namespace, never a job's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from elastrain.api import constants as c
from elastrain.api import timefmt
from elastrain.api.quantity import pod_requests

# The pod phases of core/v1, so every (role, phase) series exists, at 0 when empty.
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
_FINISHED_PODS = ("Succeeded", "Failed")
_FINISHED_JOBS = ("Succeeded", "Failed")


@dataclass(frozen=True)
class ClusterSummary:
    """One reading of the caches, as the gauges report it."""

    pods: dict[tuple[str, str], int] = field(default_factory=dict)
    gpus: dict[str, float] = field(default_factory=dict)
    oldest_pending: dict[str, float] = field(default_factory=dict)
    stalled: dict[str, int] = field(default_factory=dict)


def summarize(
    jobs: Iterable[tuple[Mapping[str, Any], Iterable[Mapping[str, Any]]]], now: datetime
) -> ClusterSummary:
    """The gauges' values for ``jobs``, each with its pods, at ``now``."""
    pods = {(role, phase): 0 for role in c.ROLES for phase in POD_PHASES}
    gpus: dict[str, float] = {}
    oldest: dict[str, float] = {}
    stalled: dict[str, int] = {}
    for job, job_pods in jobs:
        meta = _dict(job.get("metadata"))
        status = _dict(job.get("status"))
        namespace = str(meta.get("namespace") or "")
        gpus.setdefault(namespace, 0.0)
        oldest.setdefault(namespace, 0.0)
        stalled[namespace] = stalled.get(namespace, 0) + int(_stalled(status))
        finished = status.get("phase") in _FINISHED_JOBS
        for pod in job_pods:
            pod_meta = _dict(pod.get("metadata"))
            role = str(_dict(pod_meta.get("labels")).get(c.LABEL_REPLICA_TYPE) or "")
            phase = str(_dict(pod.get("status")).get("phase") or "Pending")
            if role in c.ROLES and phase in POD_PHASES:
                pods[(role, phase)] += 1
            if phase == "Pending":
                created = timefmt.parse(pod_meta.get("creationTimestamp"))
                age = max(0.0, timefmt.seconds_until(now, created)) if created else 0.0
                oldest[namespace] = max(oldest[namespace], age)
            if not finished and phase not in _FINISHED_PODS:
                wanted = pod_requests(_dict(pod.get("spec"))).get(c.GPU_RESOURCE, Fraction(0))
                gpus[namespace] += float(wanted)
    return ClusterSummary(pods=pods, gpus=gpus, oldest_pending=oldest, stalled=stalled)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _stalled(status: Mapping[str, Any]) -> bool:
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return False
    return any(
        isinstance(cond, Mapping)
        and cond.get("type") == c.CONDITION_STALLED
        and cond.get("status") == "True"
        for cond in conditions
    )


class ClusterCollector(Collector):
    """Serves the newest :class:`ClusterSummary` (empty until the first ``update``)."""

    def __init__(self) -> None:
        self._summary = ClusterSummary()

    def update(self, summary: ClusterSummary) -> None:
        self._summary = summary  # one reference swap: atomic for the scrape thread

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self._summary
        families: list[tuple[str, str, list[str], Mapping[Any, float]]] = [
            (
                "elastrain_pods",
                "Pods of TrainingJobs, by replica type (role) and pod phase.",
                ["role", "phase"],
                s.pods,
            ),
            (
                "elastrain_gpus_requested",
                f"{c.GPU_RESOURCE} requested by the unfinished pods of unfinished TrainingJobs.",
                ["namespace"],
                s.gpus,
            ),
            (
                "elastrain_oldest_pending_pod_seconds",
                "Age of the oldest Pending (unscheduled or starting) pod of any TrainingJob; "
                "0: none.",
                ["namespace"],
                s.oldest_pending,
            ),
            (
                "elastrain_jobs_stalled",
                "TrainingJobs whose Stalled condition is True (no training step for "
                "--stall-after).",
                ["namespace"],
                s.stalled,
            ),
        ]
        for name, doc, labels, values in families:
            family = GaugeMetricFamily(name, doc, labels=labels)
            for key, number in sorted(values.items()):
                family.add_metric(list(key) if isinstance(key, tuple) else [key], number)
            yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only, so registering never runs collect() on a half-built operator.
        return self.collect()
