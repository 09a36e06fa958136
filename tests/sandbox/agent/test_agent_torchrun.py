"""torchrun's c10d rendezvous across two sandbox pods: the reason pods need a real identity.

The rendezvous host is chosen by comparing the endpoint ``job-worker-0.job`` with each pod's
hostname and resolved addresses, and both agents bind the store's port on 0.0.0.0; this only
works with per-pod UTS, mount and network namespaces (see the sandbox notes).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from agent_harness import ROOT_MARKS
from elastrain_sandbox.embedded import Sandbox

pytestmark = [*ROOT_MARKS, pytest.mark.slow]

SCRIPT = "echo rank=$RANK world=$WORLD_SIZE host=$(hostname)"


@pytest.fixture
def sb(tmp_path: Any) -> Iterator[Sandbox]:
    sandbox = Sandbox(nodes=2, state_dir=tmp_path / "sb", agent_options={"shutdown_grace": 1.0})
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def worker(index: int) -> dict[str, Any]:
    command = [
        "torchrun",
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=job-worker-0.job:29400",
        "--rdzv-id=t1",
        "--no-python",
        "sh",
        "-c",
        SCRIPT.replace("$", "$$"),  # keep Kubernetes from expanding the shell's variables
    ]
    return {
        "metadata": {"name": f"job-worker-{index}", "labels": {"job": "t1"}},
        "spec": {
            "hostname": f"job-worker-{index}",
            "subdomain": "job",
            "restartPolicy": "Never",
            "containers": [
                {"name": "trainer", "image": "elastrain/trainer:dev", "command": command}
            ],
        },
    }


def test_two_pods_rendezvous_with_torchrun_c10d(sb: Sandbox) -> None:
    svc = {
        "metadata": {"name": "job"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"job": "t1"}},
    }
    sb.store.create("services", svc, namespace="default")
    for index in range(2):
        sb.store.create("pods", worker(index), namespace="default")

    def phases() -> list[str]:
        return [
            (sb.store.get("pods", f"job-worker-{i}", "default").get("status") or {}).get(
                "phase", ""
            )
            for i in range(2)
        ]

    deadline = time.monotonic() + 150
    while not all(p in ("Succeeded", "Failed") for p in phases()):
        assert time.monotonic() < deadline, f"workers did not finish: {phases()}"
        time.sleep(0.2)
    logs = [
        (sb.state_dir / "logs" / "default" / f"job-worker-{i}" / "trainer" / "0.log").read_text()
        for i in range(2)
    ]
    assert phases() == ["Succeeded", "Succeeded"], logs
    ranks = sorted(line for log in logs for line in log.splitlines() if line.startswith("rank="))
    assert [r.split()[:2] for r in ranks] == [["rank=0", "world=2"], ["rank=1", "world=2"]]
