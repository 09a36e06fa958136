"""The real operator (``python -m elastrain operator``) as a subprocess against a sandbox.

Tests act the way a user does (``kubectl apply/scale/patch/delete/logs``) and read the
cluster's state from the sandbox's store, which is the API server's own storage: cheaper
than a kubectl process per poll on a 2-core machine, and no less real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from elastrain_sandbox.embedded import Sandbox
from elastrain_sandbox.ports import free_port
from prometheus_client.parser import text_string_to_metric_families
from sandbox_fixtures import Kubectl, wait_for

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "trainingjobs.elastrain.dev.yaml"
TJ = "trainingjobs.elastrain.dev"


class Operator:
    """One operator process; its log goes to a file that failing tests print."""

    def __init__(self, kubeconfig: Path, log_path: Path, *extra: str) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.extra = extra
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> Operator:
        args = [
            sys.executable,
            "-m",
            "elastrain",
            "operator",
            "--metrics-port",
            str(self.metrics_port),
            "--health-port",
            str(self.health_port),
            *(extra or self.extra),
        ]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(self._healthy, timeout=60, what="operator liveness endpoint")
        except BaseException:
            self.kill()  # never leak an operator whose start failed
            raise
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as when a node dies under the operator."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait: the exit status of a graceful shutdown."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of the real /metrics endpoint: (name, labels) -> value."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Cluster:
    """A sandbox with the CRD installed, kubectl, and helpers to read jobs and children."""

    def __init__(self, sb: Sandbox, kubectl: Kubectl) -> None:
        self.sb = sb
        self.kubectl = kubectl
        self._namespaces = 0

    def install_crd(self) -> None:
        self.kubectl("apply", "-f", str(CRD))
        wait_for(lambda: self._established(), timeout=30, what="CRD Established")

    def _established(self) -> bool:
        crd = self.sb.store.get("customresourcedefinitions.apiextensions.k8s.io", TJ)
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    def namespace(self, prefix: str) -> str:
        self._namespaces += 1
        name = f"{prefix}-{self._namespaces}"
        self.kubectl("create", "namespace", name)
        return name

    def apply(self, namespace: str, obj: dict[str, Any]) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj))

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.sb.store.list(TJ, namespace=namespace).items
        return next((j for j in found if j["metadata"]["name"] == name), None)

    def pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        selector = f"elastrain.dev/job-name={job}"
        return self.sb.store.list("pods", namespace=namespace, label_selector=selector).items

    def services(self, namespace: str, job: str) -> list[dict[str, Any]]:
        selector = f"elastrain.dev/job-name={job}"
        return self.sb.store.list("services", namespace=namespace, label_selector=selector).items

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        items = self.sb.store.list("events", namespace=namespace).items
        return [e for e in items if e.get("involvedObject", {}).get("name") == name]

    def wait_phase(
        self,
        namespace: str,
        name: str,
        phase: str,
        timeout: float = 60,
        operator: Operator | None = None,
    ) -> dict[str, Any]:
        """Poll until ``status.phase`` is ``phase``; the failure message shows the last status."""

        def reached() -> dict[str, Any] | None:
            job = self.job(namespace, name)
            status = (job or {}).get("status") or {}
            return job if status.get("phase") == phase else None

        try:
            return wait_for(reached, timeout=timeout, interval=0.1, what=f"{name} {phase}")
        except AssertionError as exc:
            job = self.job(namespace, name)
            detail = json.dumps((job or {}).get("status"), indent=1)
            log = operator.log_tail() if operator else ""
            raise AssertionError(f"{exc}\nstatus: {detail}\noperator log:\n{log}") from None

    def wait(self, fn: Callable[[], Any], what: str, timeout: float = 60) -> Any:
        return wait_for(fn, timeout=timeout, interval=0.1, what=what)


def condition(job: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """The condition ``type_`` of a job (None before the operator wrote one)."""
    conditions = ((job or {}).get("status") or {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == type_), None)


def training_job(
    name: str,
    command: str,
    *,
    workers: int = 1,
    restart: str = "OnFailure",
    run_policy: dict[str, Any] | None = None,
    roles: dict[str, Any] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A TrainingJob whose pods run ``sh -c command`` on the host userland."""

    def role(replicas: int, cmd: str, policy: str) -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": "main",
            "image": "busybox",
            "command": ["sh", "-c", cmd],
        }
        pod: dict[str, Any] = {"containers": [container]}
        if volumes:
            pod["volumes"] = volumes
            container["volumeMounts"] = [
                {"name": v["name"], "mountPath": f"/{v['name']}"} for v in volumes
            ]
        return {"replicas": replicas, "restartPolicy": policy, "template": {"spec": pod}}

    replica_specs = {"worker": role(workers, command, restart)}
    for role_name, (replicas, cmd, policy) in (roles or {}).items():
        replica_specs[role_name] = role(replicas, cmd, policy)
    body: dict[str, Any] = {"replicaSpecs": replica_specs, **spec}
    # Restart back-off 0: recreations happen at once, so tests exercise them without waiting.
    body["runPolicy"] = {
        "restartBackoff": {"initialSeconds": 0, "maxSeconds": 0},
        **(run_policy or {}),
    }
    return {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": body,
    }
