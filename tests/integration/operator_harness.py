"""The real operator (``python -m elastrain operator``) as a subprocess against a cluster.

Tests act the way a user does (``kubectl apply/scale/patch/delete/logs``) and read the
cluster's state through its API (``cluster_api.Api``: one keep-alive GET per poll, cheaper
than a kubectl process on a 2-core machine), so the same tests run on the embedded sandbox,
the real control plane or any cluster a kubeconfig names (``ELASTRAIN_CLUSTER``, see
conftest.py). Node faults go through the cluster's ``NodeAdmin``, never its storage.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from cluster_api import Api, HasKubeconfig, resource_path
from elastrain_sandbox.admin import NodeAdmin
from elastrain_sandbox.ports import free_port
from prometheus_client.parser import text_string_to_metric_families
from sandbox_fixtures import KubeconfigKubectl, wait_for

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "trainingjobs.elastrain.dev.yaml"
TJ = "trainingjobs.elastrain.dev"
TJ_VERSION = "elastrain.dev/v1alpha1"


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
        # Unbuffered: a SIGKILLed operator (the crash tests, every teardown) keeps its last lines.
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
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
    """A cluster with the CRD installed: kubectl for what a user does, the API for the rest.

    ``target`` is a kubeconfig path or anything with ``.kubeconfig_path`` (a ``Sandbox``, a real
    cluster). Every read is one API call. ``nodes`` is the cluster's ``NodeAdmin`` (None when
    it offers none); ``kind`` is the ``ELASTRAIN_CLUSTER`` it came from. ``owned``: the suite
    made the cluster and throws it away whole; otherwise (someone's cluster) ``cleanup()``
    deletes the namespaces and cluster-wide objects this helper created. ``timeout_scale``
    stretches every wait's deadline on clusters slower than the embedded one (real kubelets
    back off 10 s, 20 s, 40 s between restarts); it bounds waiting and asserts nothing on time.
    """

    def __init__(
        self,
        target: Path | HasKubeconfig,
        kubectl: KubeconfigKubectl,
        *,
        kind: str = "embedded",
        nodes: NodeAdmin | None = None,
        owned: bool = True,
        timeout_scale: float = 1.0,
    ) -> None:
        self.kubeconfig_path = Path(target) if isinstance(target, Path) else target.kubeconfig_path
        # The operator's own credentials: the chart's ServiceAccount where the cluster enforces
        # RBAC and the suite installed it (real), else the same as the tests'.
        self.operator_kubeconfig = self.kubeconfig_path
        # kube-apiserver's audit log of the operator's requests, where the suite enables one.
        self.audit_log: Path | None = None
        self.kubectl = kubectl
        self.api = Api(self.kubeconfig_path)
        self.kind = kind
        self.nodes = nodes
        self.owned = owned
        self.timeout_scale = timeout_scale
        # On someone else's cluster namespaces from an earlier or parallel run may exist.
        self.suffix = "" if owned else "-" + secrets.token_hex(3)
        self._namespaces: list[str] = []
        self._created: list[str] = []  # cluster-wide objects this helper created, in order

    # ------------------------------------------------------------------ setup and teardown
    def install(self, *, path: Path | None = None, manifest: str | None = None) -> None:
        """``kubectl apply`` cluster-wide objects, remembering those it created (not those it
        found) so that ``cleanup()`` deletes only what the tests added."""
        args = ("apply", "-f", str(path) if path else "-")
        out = self.kubectl(*args, input=manifest).stdout
        for line in out.splitlines():
            words = line.split()
            if len(words) == 2 and words[1] == "created" and words[0] not in self._created:
                self._created.append(words[0])

    def install_crd(self) -> None:
        self.install(path=CRD)
        self.wait(self._established, "CRD Established", timeout=30)

    def crd(self, name: str) -> dict[str, Any] | None:
        return self.api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")

    def _established(self) -> bool:
        conditions = ((self.crd(TJ) or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    def namespace(self, prefix: str, *, pod_security: str = "restricted") -> str:
        """A new namespace, once its ``default`` ServiceAccount exists (a real cluster's
        ServiceAccount controller adds it a moment later, and refuses pods until then).

        It enforces the ``restricted`` Pod Security Standard unless ``pod_security`` names
        another level: every pod the operator builds there must pass the real API server's
        PodSecurity admission (the embedded one does not implement it)."""
        name = f"{prefix}-{len(self._namespaces) + 1}{self.suffix}"
        labels = {
            "elastrain.dev/test": "integration",
            "pod-security.kubernetes.io/enforce": pod_security,
            "pod-security.kubernetes.io/enforce-version": "latest",
        }
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        }
        Api.check(self.api.call("POST", "/api/v1/namespaces", body), "POST", "namespaces")
        self._namespaces.append(name)
        self.wait(
            lambda: self.api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
            f"the default ServiceAccount of {name}",
            timeout=30,
        )
        return name

    def cleanup(self) -> None:
        """Delete this helper's namespaces, then the cluster-wide objects it created, and wait
        until they are gone (the next module's operator must not see them)."""
        self.delete_namespaces()
        for ref in reversed(self._created):
            self.kubectl("delete", ref, "--ignore-not-found", "--timeout=120s")
        self._created.clear()

    def delete_namespaces(self) -> None:
        """Delete this helper's namespaces and wait until they are gone."""
        for ns in self._namespaces:
            # Pods first, at once: a shell as PID 1 ignores SIGTERM, which would cost each
            # pod its whole grace period before the namespace can go.
            self.api.call(
                "DELETE", f"/api/v1/namespaces/{ns}/pods", query={"gracePeriodSeconds": "0"}
            )
            self.api.call("DELETE", f"/api/v1/namespaces/{ns}")
        self.wait(
            lambda: all(
                self.api.get(f"/api/v1/namespaces/{ns}") is None for ns in self._namespaces
            ),
            "test namespaces deleted",
            timeout=120,
        )
        self._namespaces.clear()

    def close(self) -> None:
        self.api.close()

    # ------------------------------------------------------------------ user actions
    def apply(self, namespace: str, obj: dict[str, Any]) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj))

    # ------------------------------------------------------------------ reads (one GET each)
    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.api.get(f"{resource_path(TJ_VERSION, 'trainingjobs', namespace)}/{name}")

    def pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        selector = f"elastrain.dev/job-name={job}"
        return self.api.items(resource_path("v1", "pods", namespace), labelSelector=selector)

    def services(self, namespace: str, job: str) -> list[dict[str, Any]]:
        selector = f"elastrain.dev/job-name={job}"
        return self.api.items(resource_path("v1", "services", namespace), labelSelector=selector)

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        path = resource_path("v1", "events", namespace)
        return self.api.items(path, fieldSelector=f"involvedObject.name={name}")

    def items(
        self, api_version: str, plural: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Any kind's objects (none while it is not served)."""
        return self.api.items(resource_path(api_version, plural, namespace))

    def schedulable_node(self) -> dict[str, Any]:
        """A Ready node that takes any pod (not cordoned, no NoSchedule/NoExecute taint)."""
        for node in self.api.items("/api/v1/nodes"):
            spec, status = node.get("spec") or {}, node.get("status") or {}
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in status.get("conditions") or []
            )
            tainted = any(
                t.get("effect") in ("NoSchedule", "NoExecute") for t in spec.get("taints") or []
            )
            if ready and not tainted and not spec.get("unschedulable"):
                return node
        raise AssertionError("no Ready, schedulable, untainted node")

    # ------------------------------------------------------------------ waiting
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
            return self.wait(reached, f"{name} {phase}", timeout=timeout)
        except AssertionError as exc:
            job = self.job(namespace, name)
            detail = json.dumps((job or {}).get("status"), indent=1)
            log = operator.log_tail() if operator else ""
            raise AssertionError(f"{exc}\nstatus: {detail}\noperator log:\n{log}") from None

    def wait(self, fn: Callable[[], Any], what: str, timeout: float = 60) -> Any:
        return wait_for(fn, timeout=timeout * self.timeout_scale, interval=0.1, what=what)


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
    node_selector: dict[str, str] | None = None,
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
        if node_selector:
            pod["nodeSelector"] = node_selector
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
