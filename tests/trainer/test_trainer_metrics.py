"""The trainer's metrics mean what docs/trainer.md says, read off real training processes.

The operator fills `status.progress` from one endpoint per job: worker 0's first process (the
port given by --metrics-port). So these tests scrape exactly that endpoint while a real job
trains (torchrun with the operator's c10d environment, or a ps cluster over HTTP) and
check each value against something the test knows independently: the flags it launched with,
the other rank's endpoint, the ps's own update count, a bound that a worker-local figure could
never reach. Every wait polls with a deadline; nothing asserts on how fast anything ran.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from elastrain_sandbox.ports import free_port
from prometheus_client.parser import text_string_to_metric_families
from trainer_helpers import TORCHRUN, TRAIN, Proc, clean_env, poll, scrape

pytestmark = pytest.mark.slow

PREFIX = "elastrain_trainer_"
DDP_ARGS = ["--batch-size", "32", "--samples", "512", "--log-every", "1000"]


@dataclass(frozen=True)
class Reading:
    """One scrape of one endpoint: its gauges by short name, and when it was taken (the local
    clock just before the request and just after the answer)."""

    values: dict[str, float]
    labels: dict[str, str]
    before: float
    after: float

    def __getitem__(self, name: str) -> float:
        return self.values[name]


def read(port: int) -> Reading | None:
    """Scrape `port`; None while nothing serves it (starting, or between rendezvous rounds) or
    while it serves no reading yet (a new round's process answers before its first sync step
    sets its labelled gauges)."""
    before = time.time()
    try:
        text = scrape(port)
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError):
        # Refused, or cut off mid-answer by a process that a new round is replacing.
        return None
    after = time.time()
    values: dict[str, float] = {}
    labels: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(PREFIX):
                values[sample.name.removeprefix(PREFIX)] = sample.value
                labels = dict(sample.labels)
    if not values:
        return None
    return Reading(values, labels, before, after)


def read_when(port: int, ok: Callable[[Reading], bool], timeout: float, what: str) -> Reading:
    """Poll `port` until a reading satisfies `ok`; that reading."""

    def check() -> Reading | None:
        got = read(port)
        return got if got is not None and ok(got) else None

    found: Reading = poll(check, timeout, what, interval=0.05)
    return found


def saved_later(new: Reading, old: Reading) -> bool:
    """Whether `new` reports a checkpoint written after the one `old` reported, from the ages.

    The age is computed at scrape time, so the save happened at (scrape time - age). The scrape
    time is only known to lie between `before` and `after`; taking the bounds that disfavour the
    claim keeps this exact: it can only be true if the age really restarted at the new save.
    """
    newest_save_earliest = new.before - new["last_checkpoint_age_seconds"]
    older_save_latest = old.after - old["last_checkpoint_age_seconds"]
    return newest_save_earliest > older_save_latest


def _torchrun_env(rdzv_port: int, node_rank: int, nproc: int) -> dict[str, str]:
    """What the operator injects into an elastic DDP worker pod (nnodes 1:2, c10d)."""
    return clean_env(
        PET_NNODES="1:2",
        PET_NPROC_PER_NODE=str(nproc),
        PET_NODE_RANK=str(node_rank),
        PET_RDZV_BACKEND="c10d",
        PET_RDZV_ENDPOINT=f"127.0.0.1:{rdzv_port}",
        PET_RDZV_ID="metrics-test-uid",
        PET_MAX_RESTARTS="1",
        # One node may start the job: do not wait 30 s for a second one each round.
        PET_RDZV_CONF="last_call_timeout=1",
    )


def _torchrun(
    tmp_path: Path, name: str, env: dict[str, str], metrics_port: int, steps: int
) -> Proc:
    cmd = [
        TORCHRUN,
        "--no-python",
        TRAIN,
        *DDP_ARGS,
        "--steps",
        str(steps),
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        "--checkpoint-every",
        "5",
        "--step-delay",
        "0.05",
        "--metrics-port",
        str(metrics_port),
    ]
    return Proc(cmd, env, tmp_path / f"{name}.log", tmp_path)


def test_ddp_worker_0_serves_job_wide_progress_through_a_scale_up(tmp_path: Path) -> None:
    """Pod A (2 ranks) trains alone, then pod B (1 rank) joins: a re-rendezvous that is a
    membership change, not a failure. Pod A's first process is what the operator scrapes."""
    steps = 100_000
    rdzv = free_port()
    port_a, port_b = free_port(2), free_port()
    pod_a = _torchrun(tmp_path, "a", _torchrun_env(rdzv, 0, nproc=2), port_a, steps)
    procs = [pod_a]
    try:
        first = read_when(port_a, lambda r: r["step"] >= 1, 120, "pod A's rank to train")
        assert first["total_steps"] == steps  # what progress % and the ETA divide by
        assert first["world_size"] == 2  # the launched world: 1 node x 2 processes
        assert (first["rendezvous_round"], first["restarts"]) == (0, 0)
        read_when(port_a, lambda r: r["step"] > first["step"], 60, "the step to rise")

        # Job-wide, not per rank: both ranks report the same loss for the same step, though
        # each computed its own half of the global batch (their local losses differ).
        def same_step_on_both() -> tuple[Reading, Reading] | None:
            a0, a1 = read(port_a), read(port_a + 1)
            if a0 is None or a1 is None or a0["step"] != a1["step"]:
                return None
            return a0, a1

        a0, a1 = poll(same_step_on_both, 60, "both ranks at one step", interval=0.01)
        assert a0["loss"] == a1["loss"] and math.isfinite(a0["loss"]) and a0["loss"] > 0
        assert a0["samples_per_second"] > 0 and a1["samples_per_second"] > 0

        # A save moves the checkpoint step on and restarts its age (computed at scrape time).
        saved = read_when(port_a, lambda r: r["last_checkpoint_step"] >= 5, 60, "a checkpoint")
        assert saved["last_checkpoint_age_seconds"] >= 0
        later = read_when(
            port_a,
            lambda r: (
                r["last_checkpoint_step"] > saved["last_checkpoint_step"] and saved_later(r, saved)
            ),
            60,
            "a newer checkpoint with its age restarted",
        )
        assert later["last_checkpoint_age_seconds"] >= 0
        assert later["last_checkpoint_step"] % 5 == 0

        # Pod B joins: torchrun tears round 0 down and forms round 1 with 3 ranks. The agent's
        # restart count stays 0 (no failure); the rendezvous round is what moved.
        before_join = read_when(port_a, lambda r: r["step"] >= 1, 10, "pod A still training")
        procs.append(_torchrun(tmp_path, "b", _torchrun_env(rdzv, 1, nproc=1), port_b, steps))
        joined = read_when(
            port_a,
            lambda r: r["world_size"] == 3 and r["step"] >= 1,
            180,
            "pod A's first process training in a world of 3",
        )
        assert (joined["rendezvous_round"], joined["restarts"]) == (1, 0)
        assert joined["total_steps"] == steps
        # Resumed from the checkpoint written when round 0 was stopped, not from scratch.
        assert joined["last_checkpoint_step"] >= before_join["last_checkpoint_step"]
        assert joined["step"] >= joined["last_checkpoint_step"] > 0
        b = read_when(port_b, lambda r: r["step"] >= 1, 60, "pod B's rank to train")
        assert (b["world_size"], b["rendezvous_round"], b["restarts"]) == (3, 1, 0)
        assert pod_a.popen.poll() is None, pod_a.tail()

        # Pod B is deleted (a scale-down): its rank checkpoints and exits 143, pod A's ranks
        # stop with it and exit EXIT_REGROUP, and pod A's agent re-rendezvouses without
        # spending its one --max-restarts (plain torchrun would show restarts 1 here).
        os.kill(procs[1].popen.pid, signal.SIGTERM)
        assert procs[1].wait(120) == 143, procs[1].tail()
        left = read_when(
            port_a,
            lambda r: r["world_size"] == 2 and r["rendezvous_round"] == 2 and r["step"] >= 1,
            180,
            "pod A training alone again after pod B left",
        )
        assert left["restarts"] == 0, pod_a.tail()
        assert left["step"] >= joined["step"]  # resumed from the shared checkpoint
        assert "re-rendezvous number 1 without spending a restart" in pod_a.text(), pod_a.tail()
        assert pod_a.popen.poll() is None, pod_a.tail()
    finally:
        for proc in procs:
            proc.kill()


PS_ARGS = [
    "--steps",
    "100000",
    "--batch-size",
    "32",
    "--samples",
    "512",
    "--log-every",
    "1000",
]
PUSH_BATCH = 16  # --batch-size 32 over 2 workers
SLOW_DELAY_S = 1.0  # worker 0 sleeps this long after each of its pushes


def test_ps_worker_0_serves_the_jobs_progress_not_its_own(tmp_path: Path) -> None:
    """1 ps + 2 workers, worker 0 slowed to one push a second, worker 1 at full speed.

    Worker 0 alone can never exceed PUSH_BATCH / SLOW_DELAY_S samples per second; its endpoint
    must still show the job's throughput, and a step that counts worker 1's pushes too.
    """
    cluster = {"ps": [f"127.0.0.1:{free_port()}"], "worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    ports = {"ps": free_port(), "w0": free_port(), "w1": free_port()}

    def start(name: str, role: str, index: int, delay: float) -> Proc:
        env = clean_env(
            ELASTRAIN_CLUSTER=json.dumps(cluster),
            ELASTRAIN_ROLE=role,
            ELASTRAIN_INDEX=str(index),
        )
        args = [*PS_ARGS, "--metrics-port", str(ports[name]), "--step-delay", str(delay)]
        return Proc([TRAIN, *args], env, tmp_path / f"{name}.log", tmp_path)

    procs = [start("ps", "ps", 0, 0), start("w1", "worker", 1, 0.01), start("w0", "worker", 0, 1)]
    try:
        first = read_when(ports["w0"], lambda r: r["step"] >= 1, 120, "worker 0 to see progress")
        assert first.labels == {"role": "worker", "rank": "0"}
        assert (first["total_steps"], first["world_size"]) == (100_000, 2)
        assert (first["rendezvous_round"], first["restarts"]) == (0, 0)
        assert math.isfinite(first["loss"]) and first["loss"] > 0
        read_when(ports["w0"], lambda r: r["step"] > first["step"], 60, "the step to rise")
        fast = read_when(
            ports["w0"],
            lambda r: r["samples_per_second"] > 2 * PUSH_BATCH / SLOW_DELAY_S,
            60,
            "worker 0's endpoint to show more throughput than worker 0 alone can give",
        )
        # Steps done are pushes finished / workers: never more than the ps has applied (a
        # worker reports a push done only once every shard applied it; nothing is dropped
        # without --staleness).
        ps = read(ports["ps"])
        assert ps is not None and ps.labels == {"role": "ps", "rank": "0"}
        assert fast["step"] * 2 <= ps["step"]
        assert ps["total_steps"] == 100_000
    finally:
        for proc in procs:
            proc.kill()
