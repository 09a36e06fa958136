"""Job counters follow the planner's transitions; the endpoint serves them in text format.

That the planner reports each transition once (and none for a repeated write) is held by
``tests/planner/test_planner_transitions.py`` and the planner's property tests.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from elastrain.metrics.registry import Metrics
from elastrain.planner.model import Transition, TransitionKind
from prometheus_client.parser import text_string_to_metric_families

CREATED = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)


def tr(kind: TransitionKind, reason: str = "", at: int = 0, first: bool = False) -> Transition:
    """A transition ``at`` seconds after CREATED."""
    return Transition(kind, reason, CREATED + timedelta(seconds=at), first_time=first)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    got = metrics.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def test_created_and_running_are_counted_once(metrics: Metrics) -> None:
    started = tr("Started", at=2, first=True)
    metrics.record([started, tr("Created", "JobCreated", 2, True)], "ns", CREATED)
    metrics.record([tr("Running", "JobRunning", 30, True)], "ns", CREATED)
    metrics.record([], "ns", CREATED)  # a repeated write carries no transition
    assert value(metrics, "elastrain_jobs_created_total", namespace="ns") == 1
    assert value(metrics, "elastrain_job_to_pod_creation_seconds_count") == 1
    assert value(metrics, "elastrain_job_to_pod_creation_seconds_sum") == 2
    assert value(metrics, "elastrain_job_time_to_running_seconds_count") == 1
    assert value(metrics, "elastrain_job_time_to_running_seconds_sum") == 30


def test_a_resumed_job_is_neither_created_nor_started_again(metrics: Metrics) -> None:
    """Regression (suspend/resume): Created and Started again, but not for the first time."""
    metrics.record([tr("Started", at=1, first=True), tr("Created", "C", 1, True)], "ns", CREATED)
    metrics.record([tr("Started", at=900), tr("Created", "C", 900)], "ns", CREATED)
    assert value(metrics, "elastrain_jobs_created_total", namespace="ns") == 1
    assert value(metrics, "elastrain_job_to_pod_creation_seconds_count") == 1
    assert value(metrics, "elastrain_job_to_pod_creation_seconds_sum") == 1


def test_restarts_count_each_entry_into_restarting(metrics: Metrics) -> None:
    restarting = tr("Restarting", "PodFailed", 40, first=True)
    back = tr("Running", "JobRunning", 50)  # not first: the job ran before
    again = tr("Restarting", "PodFailed", 60)
    for transitions in ([restarting], [back], [again]):
        metrics.record(transitions, "ns", CREATED)
    assert value(metrics, "elastrain_jobs_restarted_total", namespace="ns", reason="PodFailed") == 2
    # Running again after a restart is not a second time-to-running.
    assert value(metrics, "elastrain_job_time_to_running_seconds_count") == 0


def test_terminal_transitions_carry_the_reason(metrics: Metrics) -> None:
    metrics.record([tr("Failed", "BackoffLimitExceeded", first=True)], "a", CREATED)
    metrics.record([], "a", CREATED)  # written again: no transition
    metrics.record([tr("Succeeded", "JobSucceeded", first=True)], "b", CREATED)
    labels = {"namespace": "a", "reason": "BackoffLimitExceeded"}
    assert value(metrics, "elastrain_jobs_failed_total", **labels) == 1
    assert value(metrics, "elastrain_jobs_succeeded_total", namespace="b") == 1
    assert value(metrics, "elastrain_jobs_succeeded_total", namespace="a") == 0


def test_latencies_need_the_creation_time_and_are_never_negative(metrics: Metrics) -> None:
    metrics.record(
        [tr("Started", at=5, first=True), tr("Running", "JobRunning", 9, True)], "ns", None
    )
    assert value(metrics, "elastrain_job_to_pod_creation_seconds_count") == 0
    assert value(metrics, "elastrain_job_time_to_running_seconds_count") == 0
    # A creationTimestamp from a clock ahead of ours.
    metrics.record([tr("Started", at=-3, first=True)], "ns", CREATED)
    assert value(metrics, "elastrain_job_to_pod_creation_seconds_count") == 1
    assert value(metrics, "elastrain_job_to_pod_creation_seconds_sum") == 0


def test_a_missing_reason_is_counted_as_unknown(metrics: Metrics) -> None:
    metrics.record([tr("Failed"), tr("Restarting")], "ns", CREATED)
    assert value(metrics, "elastrain_jobs_failed_total", namespace="ns", reason="Unknown") == 1
    assert value(metrics, "elastrain_jobs_restarted_total", namespace="ns", reason="Unknown") == 1


def test_phase_gauge_tracks_each_job_once(metrics: Metrics) -> None:
    metrics.set_job_phase(("ns", "a"), "Running")
    metrics.set_job_phase(("ns", "b"), "Running")
    metrics.set_job_phase(("ns", "a"), "Running")
    metrics.set_job_phase(("ns", "a"), "Succeeded")
    assert value(metrics, "elastrain_jobs", phase="Running") == 1
    assert value(metrics, "elastrain_jobs", phase="Succeeded") == 1
    metrics.set_job_phase(("ns", "b"), None)
    assert value(metrics, "elastrain_jobs", phase="Running") == 0


@pytest.fixture
def endpoint(metrics: Metrics) -> Iterator[str]:
    server = metrics.serve(0, addr="127.0.0.1")
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def test_endpoint_serves_every_documented_metric(metrics: Metrics, endpoint: str) -> None:
    metrics.pods_created.labels("ns").inc(3)
    with urllib.request.urlopen(endpoint, timeout=10) as response:
        text = response.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    expected = {
        "elastrain_jobs_created": "counter",
        "elastrain_jobs_succeeded": "counter",
        "elastrain_jobs_failed": "counter",
        "elastrain_jobs_restarted": "counter",
        "elastrain_pods_created": "counter",
        "elastrain_pods_deleted": "counter",
        "elastrain_pod_create_failures": "counter",
        "elastrain_reconcile_errors": "counter",
        "elastrain_jobs": "gauge",
        "elastrain_workqueue_depth": "gauge",
        "elastrain_reconcile_duration_seconds": "histogram",
        "elastrain_job_to_pod_creation_seconds": "histogram",
        "elastrain_job_time_to_running_seconds": "histogram",
        "elastrain_job_scale_events": "counter",
        "elastrain_job_stalls": "counter",
        "elastrain_pod_replacement_seconds": "histogram",
        "elastrain_job_scale_duration_seconds": "histogram",
        "elastrain_pods": "gauge",
        "elastrain_gpus_requested": "gauge",
        "elastrain_oldest_pending_pod_seconds": "gauge",
        "elastrain_jobs_stalled": "gauge",
        "process_resident_memory_bytes": "gauge",
        "process_cpu_seconds": "counter",
    }
    assert {name: families[name].type for name in expected if name in families} == expected
    samples = {
        (s.name, s.labels.get("namespace")): s.value
        for s in families["elastrain_pods_created"].samples
    }
    assert samples[("elastrain_pods_created_total", "ns")] == 3
    # Only our metrics and the process's own: a private registry, nothing of the global one.
    ours = ("elastrain_", "process_", "python_info")
    assert not [name for name in families if not name.startswith(ours)]


def test_recovery_and_scaling_transitions_feed_their_metrics(metrics: Metrics) -> None:
    failed = CREATED + timedelta(seconds=10)
    replaced = Transition("Replaced", "worker", CREATED + timedelta(seconds=14), since=failed)
    scaled = tr("Scaled", "Up", 20)
    done = Transition("ScaleCompleted", "", CREATED + timedelta(seconds=50), since=scaled.at)
    metrics.record([replaced, scaled, done, tr("Scaled", "Down", 60), tr("Stalled")], "ns", None)
    assert value(metrics, "elastrain_pod_replacement_seconds_count", role="worker") == 1
    assert value(metrics, "elastrain_pod_replacement_seconds_sum", role="worker") == 4
    assert value(metrics, "elastrain_job_scale_duration_seconds_sum") == 30
    assert value(metrics, "elastrain_job_scale_events_total", namespace="ns", direction="up") == 1
    assert value(metrics, "elastrain_job_scale_events_total", namespace="ns", direction="down") == 1
    assert value(metrics, "elastrain_job_stalls_total", namespace="ns") == 1


def test_the_docs_table_lists_exactly_the_metrics_served(metrics: Metrics, endpoint: str) -> None:
    """docs/operator.md and the README name every metric, and no metric that is not served."""
    with urllib.request.urlopen(endpoint, timeout=10) as response:
        families = list(text_string_to_metric_families(response.read().decode()))
    # The parser drops a counter's ``_total``; the docs name the series as queried.
    ours = {
        f.name + ("_total" if f.type == "counter" else "")
        for f in families
        if f.name.startswith("elastrain_")
    }
    repo = Path(__file__).resolve().parents[2]
    table = (repo / "docs" / "operator.md").read_text()
    documented = set(re.findall(r"^\| `(elastrain_[a-z_]+)` \|", table, flags=re.M))
    assert documented == ours
    readme = (repo / "README.md").read_text()
    assert not [name for name in ours if name not in readme], "README's metrics section"
