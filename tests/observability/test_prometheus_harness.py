"""The Prometheus test harness against the real binaries, and the real trainer through it.

The harness is what the observability tests trust to say "Prometheus sees X", so it is tested
on something whose value the test sets itself: a prometheus_client endpoint started here. Then
the real trainer: its live /metrics text must pass `promtool check metrics`, and Prometheus,
scraping it through file_sd with the labels the chart's PodMonitor gives, must see its gauges.
Tests that run a Prometheus server are marked slow: each target change takes Prometheus about
5 s to act on (see prometheus_harness).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from elastrain_sandbox.ports import free_port
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from prometheus_harness import (
    Prometheus,
    PromQLError,
    Result,
    promtool_check_metrics,
    require_tool,
    running_prometheus,
    target_group,
    value,
)

TRAIN = str(Path(sys.executable).parent / "elastrain-train")
JOB_LABELS = {"trainingjob": "ddp", "namespace": "default", "replica_type": "worker"}


class Exporter:
    """A tiny metrics endpoint on loopback whose gauge the test sets."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauge = Gauge(
            "harness_probe_value", "Set by the test", ["probe"], registry=self.registry
        )
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.address = f"127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    made = Exporter()
    yield made
    made.close()


@pytest.fixture
def prom(tmp_path: Path) -> Iterator[Prometheus]:
    with running_prometheus(tmp_path / "prometheus") as server:
        yield server


def only_value(results: list[Result]) -> float | None:
    return value(results[0]) if len(results) == 1 else None


@pytest.mark.slow
def test_prometheus_scrapes_a_file_sd_target_and_answers_queries(
    prom: Prometheus, exporter: Exporter
) -> None:
    exporter.gauge.labels(probe="a").set(42)
    prom.set_targets([target_group([exporter.address], **JOB_LABELS)])
    expr = 'harness_probe_value{trainingjob="ddp",namespace="default",replica_type="worker"}'
    got = prom.wait_for(expr, lambda r: only_value(r) == 42)
    assert got[0]["metric"]["probe"] == "a"
    assert got[0]["metric"]["job"] == prom.job_name
    # Scraped live: a new value shows on a later scrape.
    exporter.gauge.labels(probe="a").set(7)
    prom.wait_for(expr, lambda r: only_value(r) == 7)
    (target,) = prom.targets()["activeTargets"]
    assert target["health"] == "up" and target["labels"]["trainingjob"] == "ddp"
    # The target file is rewritten at runtime: new labels, no restart.
    prom.set_targets([target_group([exporter.address], **{**JOB_LABELS, "trainingjob": "ps"})])
    prom.wait_for('harness_probe_value{trainingjob="ps"}', lambda r: only_value(r) == 7)
    # Scalars come back in the same shape as vectors.
    assert value(prom.query("scalar(vector(3))")[0]) == 3


def test_a_bad_query_raises_with_prometheus_message(prom: Prometheus) -> None:
    with pytest.raises(PromQLError) as caught:
        prom.query("sum(")
    assert caught.value.error_type == "bad_data"
    assert "parse error" in caught.value.message
    with pytest.raises(PromQLError, match="bad_data"):
        prom.wait_for("rate(up[5m]", lambda r: True)  # raises at once, no waiting


@pytest.mark.slow
def test_reload_loads_changed_rule_files(tmp_path: Path, exporter: Exporter) -> None:
    rules = tmp_path / "rules.yml"
    rule = "groups: [{name: g, rules: [{record: 'harness:probe:scaled', expr: '%s'}]}]\n"
    rules.write_text(rule % "harness_probe_value * 2")
    exporter.gauge.labels(probe="a").set(5)
    with running_prometheus(tmp_path / "prometheus", rule_files=[rules]) as prom:
        prom.set_targets([target_group([exporter.address], **JOB_LABELS)])
        prom.wait_for("harness:probe:scaled", lambda r: only_value(r) == 10)
        rules.write_text(rule % "harness_probe_value * 3")
        prom.reload()
        prom.wait_for("harness:probe:scaled", lambda r: only_value(r) == 15)
        rules.write_text("groups: [{name: g, rules: [{record: bad, expr: 'sum('}]}]\n")
        with pytest.raises(AssertionError, match="refused the reload"):
            prom.reload()


def test_promtool_check_metrics_finds_lint_problems() -> None:
    """The checker bites: metric text with a counter lacking `_total` and no HELP fails."""
    require_tool("promtool")
    ok, output = promtool_check_metrics("# TYPE requests counter\nrequests 1\n")
    assert not ok and "_total" in output
    ok, output = promtool_check_metrics(
        "# HELP requests_total Requests served.\n# TYPE requests_total counter\nrequests_total 1\n"
    )
    assert ok, output


# -- the real trainer --------------------------------------------------------------------------

STEPS = 100_000


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def gauge(text: str, name: str) -> float | None:
    """The value of `name` in an exposition text (one process: one sample per name)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return None


def checkpoint_step(port: int) -> float | None:
    """The trainer's `last_checkpoint_step` once it has one; None before, or while starting."""
    try:
        step = gauge(scrape(port), "elastrain_trainer_last_checkpoint_step")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    return step if step is not None and step >= 0 else None


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One real trainer process (DDP mode, one rank) training slowly with checkpoints; its
    metrics port once it has saved a checkpoint, so that every gauge holds a real value."""
    work = tmp_path_factory.mktemp("trainer")
    port = free_port()
    cmd = [TRAIN, "--steps", str(STEPS), "--batch-size", "32", "--samples", "512"]
    cmd += ["--checkpoint-dir", str(work / "ckpt"), "--checkpoint-every", "5"]
    cmd += ["--step-delay", "0.05", "--log-every", "1000", "--metrics-port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ELASTRAIN_", "PET_"))}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TF_CONFIG"):
        env.pop(name, None)
    env["OMP_NUM_THREADS"] = "1"
    with open(work / "trainer.log", "wb") as log:
        proc = subprocess.Popen(
            cmd, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while checkpoint_step(port) is None:
            assert proc.poll() is None, (work / "trainer.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint after 120s"
            time.sleep(0.1)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.mark.slow
def test_a_live_trainers_metrics_pass_promtool(trainer: int) -> None:
    text = scrape(trainer)
    for name in ("step", "total_steps", "rendezvous_round", "stale_gradients_total"):
        assert f"elastrain_trainer_{name}{{" in text, text
    ok, output = promtool_check_metrics(text)
    assert ok, f"promtool check metrics:\n{output}\n\n{text}"


@pytest.mark.slow
def test_prometheus_sees_a_live_trainer_through_file_sd(prom: Prometheus, trainer: int) -> None:
    prom.set_targets([target_group([f"127.0.0.1:{trainer}"], **JOB_LABELS)])
    sel = '{trainingjob="ddp",namespace="default",replica_type="worker",role="worker",rank="0"}'
    prom.wait_for(f"elastrain_trainer_total_steps{sel}", lambda r: only_value(r) == STEPS)
    first = value(prom.wait_for(f"elastrain_trainer_step{sel}", lambda r: len(r) == 1)[0])
    prom.wait_for(f"elastrain_trainer_step{sel}", lambda r: (only_value(r) or 0) > first)
    progress = value(
        prom.query(f"elastrain_trainer_step{sel} / elastrain_trainer_total_steps{sel}")[0]
    )
    assert 0 < progress < 1
    (loss,) = prom.query(f"elastrain_trainer_loss{sel}")
    assert math.isfinite(value(loss)) and value(loss) > 0
    assert only_value(prom.query(f"elastrain_trainer_world_size{sel}")) == 1
    assert only_value(prom.query(f"elastrain_trainer_rendezvous_round{sel}")) == 0
