"""Helpers for the real control plane (etcd, kube-apiserver, kube-controller-manager and
kube-scheduler built by ``make control-plane``), one per test session, and a small API client.

These tests show what only a real API server can: CEL cost limits, strict field validation,
RBAC, PodSecurity admission and the real garbage collector. They need the binaries:
``make test`` builds them first and exports ``ELASTRAIN_CONTROL_PLANE_BIN``; run alone, the
fixture runs ``sandbox/controlplane/build.sh`` (seconds when cached, minutes cold).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
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


@dataclass
class Response:
    status: int
    body: Obj

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


class Api:
    """Plain HTTPS calls with the admin client certificate: what kubectl sends, minus kubectl."""

    def __init__(self, cluster: RealControlPlane) -> None:
        assert cluster.keys is not None
        self.base = cluster.url
        self.context = ssl.create_default_context(cafile=str(cluster.keys.ca.cert))
        self.context.load_cert_chain(str(cluster.keys.admin.cert), str(cluster.keys.admin.key))

    def call(
        self,
        method: str,
        path: str,
        body: Obj | None = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Response:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=60, context=self.context) as resp:
                return Response(resp.status, json.loads(resp.read() or b"{}"))
        except urllib.error.HTTPError as err:
            return Response(err.code, json.loads(err.read() or b"{}"))


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
