"""The system under demonstration: sandbox, CRDs, operator; started in order, stopped in reverse.

Each piece is started exactly as a user would start it (``python -m elastrain_sandbox``,
``kubectl apply -f crds/``, ``python -m elastrain operator``), as separate processes logging to
``.demo/``, so the demo exercises the real entry points rather than in-process shortcuts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from elastrain.api import constants as c
from elastrain_sandbox.agent.container import processes_with_marker
from elastrain_sandbox.ports import free_port

from elastrain_dev.demo import procs
from elastrain_dev.demo.fault import marker_id
from elastrain_dev.demo.kubectl import Kubectl, KubectlError
from elastrain_dev.demo.procs import Background
from elastrain_dev.demo.target import Target
from elastrain_dev.demo.view import View
from elastrain_dev.demo.workspace import Workspace

# 3 nodes x 4 simulated GPUs: enough room for both jobs at once, and `kubectl get nodes` shows
# the capacity a GPU cluster would have.
SANDBOX_NODES = 3
SANDBOX_GPUS_PER_NODE = 4
SANDBOX_READY_MARK = "sandbox ready: "
SANDBOX_START_TIMEOUT = 60.0
CRD_READY_TIMEOUT = 30.0
OPERATOR_START_TIMEOUT = 60.0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(200 <= response.status < 300)
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class Stack:
    """Starts and stops the demo's background processes; ``processes`` is what runs now."""

    workspace: Workspace
    target: Target
    kubectl: Kubectl
    view: View
    start_operator: bool = True
    # The sandbox's control plane: "embedded" or "real" (see docs/sandbox.md).
    control_plane: str = "embedded"
    control_plane_bin: Path | None = None
    processes: list[Background] = field(default_factory=list)

    def start(self) -> None:
        """Sandbox (unless on a real cluster), then the CRDs, then the operator."""
        if self.target.sandbox:
            self._start_sandbox()
        self._apply_crds()
        if self.start_operator:
            self._start_operator()

    def stop(self) -> list[str]:
        """Stop what was started, newest first; return the names of processes that needed SIGKILL.

        The operator goes first so that it does not spend its last seconds retrying against an
        API server that is already gone.
        """
        killed = [p.name for p in reversed(self.processes) if procs.stop(p)]
        self.processes.clear()
        return killed

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.target.kubeconfig)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _start_sandbox(self) -> None:
        ws = self.workspace
        argv = [
            sys.executable,
            "-m",
            "elastrain_sandbox",
            "--kubeconfig",
            str(ws.kubeconfig),
            "--nodes",
            str(SANDBOX_NODES),
            "--gpus-per-node",
            str(SANDBOX_GPUS_PER_NODE),
            "--state-dir",
            str(ws.sandbox_state),
            "--control-plane",
            self.control_plane,
        ]
        if self.control_plane_bin is not None:
            argv += ["--control-plane-bin", str(self.control_plane_bin)]
        what = (
            "etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the node agent"
            if self.control_plane == "real"
            else "the embedded API server and the node agent"
        )
        self.view.say(
            f"starting the sandbox ({what}): {SANDBOX_NODES} nodes x {SANDBOX_GPUS_PER_NODE} "
            f"GPUs (log: {ws.relative(ws.sandbox_log)})"
        )
        sandbox = procs.spawn("sandbox", argv, ws.sandbox_log, self._env())
        self.processes.append(sandbox)

        def ready() -> bool:
            return ws.kubeconfig.exists() and SANDBOX_READY_MARK in _read(ws.sandbox_log)

        procs.wait_until("the sandbox API server", ready, [sandbox], SANDBOX_START_TIMEOUT)
        url = _read(ws.sandbox_log).split(SANDBOX_READY_MARK, 1)[1].split()[0]
        self.view.say(f"sandbox ready: API server at {url}")

    def _apply_crds(self) -> None:
        ws = self.workspace
        self.view.say(
            f"installing the TrainingJob CRD: {self.kubectl.shown('apply', '-f', 'crds/')}"
        )
        self.kubectl.run("apply", "-f", str(ws.crds))

        def served() -> bool:
            try:
                self.kubectl.run("get", c.PLURAL, timeout=10)
            except KubectlError:
                return False
            return True

        procs.wait_until(
            "the TrainingJob API to be served", served, self.processes, CRD_READY_TIMEOUT
        )

    def _start_operator(self) -> None:
        ws = self.workspace
        health_port, metrics_port = free_port(), free_port()
        argv = [
            sys.executable,
            "-m",
            "elastrain",
            "operator",
            "--metrics-port",
            str(metrics_port),
            "--health-port",
            str(health_port),
            # Only the demo's namespace: on a real cluster, never reconcile other users' jobs.
            "--namespace",
            self.target.namespace,
        ]
        self.view.say(f"starting the operator (log: {ws.relative(ws.operator_log)})")
        operator = procs.spawn("operator", argv, ws.operator_log, self._env())
        self.processes.append(operator)
        health = f"http://127.0.0.1:{health_port}/healthz"
        procs.wait_until(
            "the operator's health endpoint",
            lambda: _http_ok(health),
            self.processes,
            OPERATOR_START_TIMEOUT,
        )
        self.view.say(f"operator ready: metrics at http://127.0.0.1:{metrics_port}/metrics")


def sweep_containers(container_ids: Iterable[str]) -> list[int]:
    """SIGKILL every process still carrying one of ``container_ids``' markers; return their pids.

    After the sandbox has stopped there must be none: this is the demo checking its promise to
    leave no process behind, and keeping it even if the sandbox did not.
    """
    found = sorted({pid for cid in container_ids for pid in processes_with_marker(marker_id(cid))})
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return found


def _read(path: os.PathLike[str]) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""
