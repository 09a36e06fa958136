"""Parameter-server mode: 1 ps + 2 workers as real processes talking TensorPipe RPC."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from elastrain_sandbox.ports import free_port
from trainer_helpers import TRAIN, Proc, clean_env, poll

INTERLEAVE = str(Path(__file__).with_name("rpc_interleave.py"))

pytestmark = pytest.mark.slow

ARGS = [
    "--steps",
    "80",
    "--batch-size",
    "32",
    "--samples",
    "512",
    "--lr",
    "0.05",
    "--staleness",
    "4",
    "--checkpoint-every",
    "10",
    "--log-every",
    "5",
    "--metrics-port",
    "0",
    "--step-delay",
    "0.02",
]


def test_async_sgd_converges_and_the_job_outlives_a_crashed_worker(tmp_path: Path) -> None:
    cluster = {"ps": [f"127.0.0.1:{free_port()}"], "worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    ckpt = ["--checkpoint-dir", str(tmp_path / "ckpt")]

    def ps_env(role: str, index: int) -> dict[str, str]:
        return clean_env(
            ELASTRAIN_CLUSTER=json.dumps(cluster), ELASTRAIN_ROLE=role, ELASTRAIN_INDEX=str(index)
        )

    # The ps reads ELASTRAIN_CLUSTER, worker 0 the TFJob-style TF_CONFIG: both must work.
    tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    # Paced so that one worker alone needs 16 s for the job: the other's join (seconds, under
    # load) cannot miss it. Worker 1 starts first and has pushed before worker 0 starts, so a
    # fast worker 0 cannot finish the job alone either.
    args = [*ARGS, "--step-delay", "0.1"]
    ps = Proc([TRAIN, *args, *ckpt], ps_env("ps", 0), tmp_path / "ps.log", tmp_path)
    other = Proc([TRAIN, "--mode", "ps", *args], ps_env("worker", 1), tmp_path / "w1.log", tmp_path)
    started = [ps, other]
    try:
        poll(lambda: "step " in other.text(), 180, "worker 1 to push gradients")
        chief = Proc([TRAIN, *args], clean_env(TF_CONFIG=tf_config), tmp_path / "w0.log", tmp_path)
        started.append(chief)
        # Both must have joined first: torch's dynamic RPC cannot admit a member after a crash.
        poll(lambda: "step " in chief.text(), 180, "worker 0 to push gradients")
        os.kill(other.popen.pid, 9)  # a worker dies mid-run: the others take its tickets
        assert chief.wait(240) == 0, chief.tail()
        assert ps.wait(120) == 0, ps.tail()  # serves until every worker is done or gone
    finally:
        for proc in started:
            proc.kill()
    summary = chief.summary()
    assert (summary["mode"], summary["steps"], summary["world_size"]) == ("ps", 80, 2)
    assert summary["final_loss"] < 0.05 * summary["first_loss"]
    assert "worker 1 (worker1_r" in ps.text() and "is gone" in ps.text()
    assert list((tmp_path / "ckpt" / "ps-0").glob("ckpt-*.pt"))
    assert not any(line.startswith("{") for line in other.lines())  # only the chief summarises


def test_ps_checkpoints_its_shard_and_exits_143_on_sigterm(tmp_path: Path) -> None:
    cluster = {"ps": [f"127.0.0.1:{free_port()}"], "worker": ["127.0.0.1:1"]}
    env = clean_env(ELASTRAIN_CLUSTER=json.dumps(cluster), ELASTRAIN_ROLE="ps", ELASTRAIN_INDEX="0")
    args = [TRAIN, *ARGS, "--checkpoint-dir", str(tmp_path / "ckpt")]
    for attempt in ("first", "resumed"):
        ps = Proc(args, env, tmp_path / f"ps-{attempt}.log", tmp_path)
        try:

            def serving(proc: Proc = ps) -> bool:
                return "serving" in proc.text()

            poll(serving, 120, "the ps to serve")
            os.kill(ps.popen.pid, signal.SIGTERM)
            code = ps.wait(60)
        finally:
            ps.kill()
        assert code == 143, ps.tail()
        assert (tmp_path / "ckpt" / "ps-0" / "ckpt-0000000000.pt").is_file()
    assert "ps-0 resumed at version 0" in ps.text()  # the second start loaded the first's file


def test_a_worker_leaving_while_another_joins_does_not_deadlock(tmp_path: Path) -> None:
    """Worker 1 finishes and leaves while worker 0's late join holds torch's membership token.

    Without the trainer's own leave-token handling this hangs: the leaver blocks its agent's
    store connection waiting for the token, and the joiner's membership update to the leaver
    needs that connection (torch 2.13).
    """
    cluster = {"ps": [f"127.0.0.1:{free_port()}"], "worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    markers = tmp_path / "markers"
    markers.mkdir()
    args = ["--steps", "10", "--batch-size", "32", "--samples", "256", "--metrics-port", "0"]

    def env(role: str, index: int, interleave: str = "") -> dict[str, str]:
        extra = {"ELASTRAIN_TEST_INTERLEAVE": interleave} if interleave else {}
        return clean_env(
            ELASTRAIN_CLUSTER=json.dumps(cluster),
            ELASTRAIN_ROLE=role,
            ELASTRAIN_INDEX=str(index),
            ELASTRAIN_TEST_MARKERS=str(markers),
            **extra,
        )

    ps = Proc([TRAIN, *args], env("ps", 0), tmp_path / "ps.log", tmp_path)
    leaver = Proc(
        [sys.executable, INTERLEAVE, *args],
        env("worker", 1, "leaver"),
        tmp_path / "w1.log",
        tmp_path,
    )
    procs = [ps, leaver]
    try:
        poll(lambda: "step " in leaver.text(), 120, "worker 1 to join and push")
        joiner = Proc(
            [sys.executable, INTERLEAVE, *args],
            env("worker", 0, "joiner"),
            tmp_path / "w0.log",
            tmp_path,
        )
        procs.append(joiner)
        assert leaver.wait(100) == 0, leaver.tail()
        assert joiner.wait(100) == 0, joiner.tail()
        assert ps.wait(100) == 0, ps.tail()
    finally:
        for proc in procs:
            proc.kill()
    # The interleaving really happened: the leave waited for worker 0's join to finish.
    assert (markers / "leave-waiting").is_file()
    assert "waiting for RPC group change Token_for_worker0_r2_join" in leaver.text()
    summary = joiner.summary()
    assert (summary["mode"], summary["steps"], summary["world_size"]) == ("ps", 10, 2)
