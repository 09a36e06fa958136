"""``python -m elastrain_sandbox``: serve, node operations through the CLI, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from sandbox_fixtures import kubectl_binary, wait_for


def _kubectl(kubeconfig: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl_binary(), "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_serves_manages_nodes_and_stops_on_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    cmd = [
        sys.executable,
        "-m",
        "elastrain_sandbox",
        "--kubeconfig",
        str(kubeconfig),
        "--nodes",
        "1",
        "--gpus-per-node",
        "2",
        "--state-dir",
        str(tmp_path / "state"),
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        failure = proc.stderr.read() if proc.poll() is not None else ""
        assert line.startswith("sandbox ready: http://127.0.0.1:"), line + failure
        nodes = json.loads(
            _kubectl(kubeconfig, tmp_path / "c", "get", "nodes", "-o", "json").stdout
        )["items"]
        assert [
            (n["metadata"]["name"], n["status"]["capacity"]["nvidia.com/gpu"]) for n in nodes
        ] == [("node-0", "2")]
        node_cli = [sys.executable, "-m", "elastrain_sandbox", "node"]
        added = subprocess.run(
            [*node_cli, "add", "extra", "--kubeconfig", str(kubeconfig), "--gpus", "8"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
        gpus = _kubectl(
            kubeconfig,
            tmp_path / "c",
            "get",
            "node",
            "extra",
            "-o",
            "jsonpath={.status.allocatable.nvidia\\.com/gpu}",
        ).stdout
        assert gpus == "8"
        subprocess.run(
            [*node_cli, "not-ready", "extra", "--kubeconfig", str(kubeconfig)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_for(
            lambda: (
                "NotReady" in _kubectl(kubeconfig, tmp_path / "c", "get", "node", "extra").stdout
            ),
            what="node NotReady",
        )
        missing = subprocess.run(
            [*node_cli, "remove", "nope", "--kubeconfig", str(kubeconfig)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert missing.returncode == 1 and 'nodes "nope" not found' in missing.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    assert rc == 0
