"""The progress reader and the cluster gauges: which endpoint is read, what a reading holds,
and a round against a real metrics endpoint served by prometheus-client."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from elastrain.api import constants as c
from elastrain.controller.monitor import ProgressReader, parse_sample, progress_target
from elastrain.controller.store import JobKey, Store
from elastrain.metrics.cluster import summarize
from prometheus_client import CollectorRegistry, Gauge, start_http_server

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def pod(
    role: str,
    index: int,
    *,
    phase: str = "Running",
    ip: str | None = "10.1.0.7",
    port: int | None = 9090,
    gpus: int = 0,
    created: str = "2026-01-01T11:50:00Z",
) -> dict[str, Any]:
    ports = [{"name": "metrics", "containerPort": port}] if port else []
    resources = {"limits": {c.GPU_RESOURCE: str(gpus)}} if gpus else {}
    status: dict[str, Any] = {"phase": phase}
    if ip:
        status["podIP"] = ip
    return {
        "metadata": {
            "name": f"j-{role}-{index}",
            "namespace": "ns",
            "creationTimestamp": created,
            "labels": {c.LABEL_REPLICA_TYPE: role, c.LABEL_REPLICA_INDEX: str(index)},
        },
        "spec": {"containers": [{"name": "t", "ports": ports, "resources": resources}]},
        "status": status,
    }


def test_rank_zero_is_worker_zero_or_the_chief() -> None:
    assert progress_target("j", [pod("worker", 1, ip="a"), pod("worker", 0)]) == "10.1.0.7:9090"
    assert progress_target("j", [pod("worker", 0), pod("chief", 0, ip="10.1.0.9")]) == (
        "10.1.0.9:9090"
    )
    assert progress_target("j", [pod("worker", 0, ip="fd00::5")]) == "[fd00::5]:9090"


def test_no_target_without_a_running_pod_an_ip_or_a_metrics_port() -> None:
    for p in (pod("worker", 0, phase="Pending"), pod("worker", 0, ip=None)):
        assert progress_target("j", [p]) is None
    assert progress_target("j", [pod("worker", 0, port=None)]) is None
    assert progress_target("j", [pod("ps", 0)]) is None


TEXT = """\
# TYPE elastrain_trainer_step gauge
elastrain_trainer_step{rank="0",role="worker"} 120.0
# TYPE elastrain_trainer_total_steps gauge
elastrain_trainer_total_steps{rank="0",role="worker"} 300.0
# TYPE elastrain_trainer_loss gauge
elastrain_trainer_loss{rank="0",role="worker"} 0.4321
# TYPE elastrain_trainer_samples_per_second gauge
elastrain_trainer_samples_per_second{rank="0",role="worker"} 812.5
# TYPE elastrain_trainer_world_size gauge
elastrain_trainer_world_size{rank="0",role="worker"} 2.0
"""


def test_a_reading_takes_the_trainer_gauges() -> None:
    sample = parse_sample(TEXT, NOW)
    assert sample is not None
    assert (sample.step, sample.total_steps, sample.loss) == (120, 300, 0.4321)
    assert (sample.samples_per_second, sample.world_size, sample.at) == (812.5, 2, NOW)


def test_a_reading_without_a_step_or_unparseable_is_none() -> None:
    assert parse_sample("# TYPE x gauge\nx 1\n", NOW) is None
    assert parse_sample("elastrain_trainer_step{ 1\n", NOW) is None
    nan = "elastrain_trainer_step 5\nelastrain_trainer_loss NaN\n"
    sample = parse_sample(nan, NOW)
    assert sample is not None and sample.step == 5 and sample.loss is None


def test_gauges_count_pods_gpus_pending_age_and_stalled_jobs() -> None:
    stalled = {"type": c.CONDITION_STALLED, "status": "True"}
    running_job = {"metadata": {"namespace": "ns"}, "status": {"phase": "Running"}}
    stalled_job = {"metadata": {"namespace": "ns"}, "status": {"conditions": [stalled]}}
    done_job = {"metadata": {"namespace": "other"}, "status": {"phase": "Failed"}}
    summary = summarize(
        [
            (running_job, [pod("worker", 0, gpus=2), pod("worker", 1, phase="Pending", gpus=2)]),
            (stalled_job, [pod("ps", 0), pod("worker", 0, phase="Succeeded", gpus=4)]),
            (done_job, [pod("worker", 0, gpus=8)]),
        ],
        NOW,
    )
    assert summary.pods[("worker", "Running")] == 2 and summary.pods[("worker", "Pending")] == 1
    assert summary.pods[("ps", "Running")] == 1 and summary.pods[("chief", "Failed")] == 0
    # The finished pod and the finished job's pod hold no GPUs.
    assert summary.gpus == {"ns": 4.0, "other": 0.0}
    assert summary.oldest_pending == {"ns": 600.0, "other": 0.0}
    assert summary.stalled == {"ns": 1, "other": 0}


class FakeIndex(dict[JobKey, list[dict[str, Any]]]):
    """A kopf index stand-in: key -> the objects stored under it."""


def test_a_round_reads_a_live_endpoint_and_enqueues_only_on_change() -> None:
    registry = CollectorRegistry()
    step = Gauge("elastrain_trainer_step", "step", registry=registry)
    step.set(7)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        port = server.server_port
        key = ("ns", "j")
        job = {"metadata": {"name": "j", "namespace": "ns"}, "status": {"phase": "Running"}}
        store = Store(
            FakeIndex({key: [job]}),
            FakeIndex({key: [pod("worker", 0, ip="127.0.0.1", port=port)]}),
            FakeIndex(),
            None,
        )
        enqueued: list[JobKey] = []

        async def scenario() -> list[int | None]:
            reader = ProgressReader(store, enqueued.append, interval=15)
            steps = []
            try:
                await reader.read_all()
                steps.append(getattr(reader.sample(key), "step", None))
                await reader.read_all()  # unchanged: no enqueue
                step.set(9)
                await reader.read_all()
                steps.append(getattr(reader.sample(key), "step", None))
            finally:
                await reader.close()
            return steps

        assert asyncio.run(scenario()) == [7, 9]
        assert enqueued == [key, key]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
