"""Helpers for the real control plane (etcd, kube-apiserver, kube-controller-manager and
kube-scheduler built by ``make control-plane``), one per test session, and a small API client.

These tests show what only a real API server can: CEL cost limits, strict field validation,
RBAC, PodSecurity admission and the real garbage collector. They need the binaries:
``make test`` builds them first and exports ``ELASTRAIN_CONTROL_PLANE_BIN``; run alone, the
fixture runs ``sandbox/controlplane/build.sh`` (seconds when cached, minutes cold).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_api import Api
from elastrain_sandbox.controlplane.cluster import BIN_ENV, RealControlPlane

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "sandbox" / "controlplane" / "build.sh"
KUBECTL = REPO / ".tools" / "bin" / "kubectl"
Obj = dict[str, Any]


def bin_dir() -> Path:
    value = os.environ.get(BIN_ENV)
    if value:
        return Path(value)
    proc = subprocess.run(
        ["bash", str(BUILD)], capture_output=True, text=True, timeout=3600, check=False
    )
    if proc.returncode == 3:  # no Go toolchain: say so; `make test` never gets here
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("bin: ")]
    return Path(lines[-1].removeprefix("bin: "))


class Kubectl:
    """The real kubectl against the real cluster (admin kubeconfig)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc

    def apply(self, obj: Obj | list[Obj]) -> None:
        docs = obj if isinstance(obj, list) else [obj]
        self("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))


@dataclass
class RealCluster:
    control_plane: RealControlPlane
    api: Api
    kubectl: Kubectl
    kubeconfig: Path


def start(root: Path) -> RealCluster:
    """A started cluster under ``root``; the caller stops ``control_plane``."""
    cluster = RealControlPlane(root / "state", root / "admin.kubeconfig", bin_dir())
    cluster.start()
    kubeconfig = root / "admin.kubeconfig"
    return RealCluster(cluster, Api(cluster), Kubectl(kubeconfig), kubeconfig)
