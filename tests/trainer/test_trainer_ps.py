"""Parameter-server mode: ps and workers as real processes, talking HTTP (``ps.transport``)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from elastrain_sandbox.ports import free_port
from trainer_helpers import TRAIN, Proc, clean_env, poll

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


def test_two_ps_async_sgd_converges_and_a_crashed_worker_is_replaced(tmp_path: Path) -> None:
    """2 ps (the model sharded across them) and 2 workers; worker 1 is SIGKILLed mid-run and
    a replacement with the same index joins while the job runs, as a recreated pod would, and
    both workers finish: the replacement too exits 0."""
    cluster = {
        "ps": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"],
        "worker": ["127.0.0.1:1", "127.0.0.1:2"],
    }
    ckpt = ["--checkpoint-dir", str(tmp_path / "ckpt")]

    def env(role: str, index: int) -> dict[str, str]:
        return clean_env(
            ELASTRAIN_CLUSTER=json.dumps(cluster), ELASTRAIN_ROLE=role, ELASTRAIN_INDEX=str(index)
        )

    # The ps read ELASTRAIN_CLUSTER, worker 0 the TFJob-style TF_CONFIG: both must work.
    tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    # Paced so that one worker alone needs 16 s for the job: the replacement's start (seconds,
    # under load) cannot miss it.
    args = [*ARGS, "--step-delay", "0.1"]
    ps = [
        Proc([TRAIN, *args, *ckpt], env("ps", i), tmp_path / f"ps{i}.log", tmp_path)
        for i in range(2)
    ]
    crashed = Proc([TRAIN, "--mode", "ps", *args], env("worker", 1), tmp_path / "w1.log", tmp_path)
    chief = Proc([TRAIN, *args], clean_env(TF_CONFIG=tf_config), tmp_path / "w0.log", tmp_path)
    started = [*ps, crashed, chief]
    try:
        poll(lambda: "step " in crashed.text(), 180, "worker 1 to push gradients")
        poll(lambda: "step " in chief.text(), 180, "worker 0 to push gradients")
        os.kill(crashed.popen.pid, 9)  # a worker dies mid-run: worker 0 takes its tickets
        crashed.wait(30)
        replacement = Proc(
            [TRAIN, "--mode", "ps", *args], env("worker", 1), tmp_path / "w1b.log", tmp_path
        )
        started.append(replacement)
        assert replacement.wait(240) == 0, replacement.tail()
        assert chief.wait(240) == 0, chief.tail()
        for server in ps:  # each serves until both workers have finished
            assert server.wait(120) == 0, server.tail()
    finally:
        for proc in started:
            proc.kill()
    assert "step " in replacement.text()  # it trained, not merely said goodbye
    summary = chief.summary()
    assert (summary["mode"], summary["steps"], summary["world_size"]) == ("ps", 80, 2)
    assert summary["ps_replicas"] == 2
    assert summary["restarts"] == 1  # worker 1 joined twice
    assert summary["final_loss"] < 0.05 * summary["first_loss"]
    for i in range(2):  # each ps checkpointed its own shard
        assert list((tmp_path / "ckpt" / f"ps-{i}").glob("ckpt-*.pt")), i
    assert not any(line.startswith("{") for line in replacement.lines())  # only the chief


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
