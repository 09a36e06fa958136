"""The CRD through the real kubectl against the sandbox API server: install, the examples,
printer columns, ``kubectl scale`` within and outside the elastic range, and the errors users
see for bad specs and forbidden updates."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_cases import EXAMPLES, REPO
from elastrain_sandbox.embedded import Sandbox

KUBECTL = REPO / ".tools" / "bin" / "kubectl"


class Kubectl:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        proc = self(*args, stdin=stdin)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def fails(self, *args: str, stdin: str | None = None) -> str:
        proc = self(*args, stdin=stdin)
        assert proc.returncode != 0, proc.stdout
        return proc.stderr


@pytest.fixture(scope="module")
def kubectl() -> Iterator[Kubectl]:
    assert KUBECTL.exists(), f"{KUBECTL} is missing: run `make install`"
    with Sandbox(nodes=1, agent=False) as sandbox:
        k = Kubectl(Path(sandbox.kubeconfig_path))
        k.ok("apply", "-f", str(REPO / "crds"))
        established = '{.status.conditions[?(@.type=="Established")].status}'
        crd = "crd/trainingjobs.elastrain.dev"
        deadline = time.monotonic() + 30
        while k.ok("get", crd, "-o", f"jsonpath={established}") != "True":
            assert time.monotonic() < deadline, "the CRD never became Established"
            time.sleep(0.2)
        yield k


def test_examples_apply_and_show_columns(kubectl: Kubectl) -> None:
    for path in EXAMPLES:
        kubectl.ok("apply", "-f", str(path))
    table = kubectl.ok("get", "tj", "-o", "wide").splitlines()
    assert table[0].split() == [
        "NAME", "PHASE", "READY", "WORKERS", "RESTARTS", "PROGRESS%", "LOSS", "ETA", "STEP",
        "MIN", "MAX", "AGE"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == {"ddp", "elastic-ddp", "ps"}
    assert rows["elastic-ddp"][1:4] == ["2", "1", "4"]  # no status yet: WORKERS, MIN, MAX


def test_progress_columns_show_the_status(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "-f", str(REPO / "examples" / "ddp.yaml"))
    progress = {
        "step": 120, "totalSteps": 300, "percent": 40, "loss": 0.4321, "samplesPerSecond": 812.5,
        "worldSize": 2, "estimatedRemainingSeconds": 250, "eta": "4m10s",
        "lastStepTime": "2026-01-01T00:00:00Z", "lastUpdateTime": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    counts = {"active": 2, "ready": 2, "pending": 0, "succeeded": 0, "failed": 0, "restarts": 0}
    status = {"phase": "Running", "replicaStatuses": {"worker": counts}, "restartCount": 0}
    # Every column filled: kubectl leaves a missing value blank, which would shift the split.
    patch = json.dumps({"status": {**status, "progress": progress}})
    kubectl.ok("patch", "tj", "ddp", "--subresource=status", "--type=merge", "-p", patch)
    table = kubectl.ok("get", "tj", "ddp").splitlines()
    row = dict(zip(table[0].split(), table[1].split(), strict=False))
    assert (row["PHASE"], row["PROGRESS%"], row["LOSS"], row["ETA"]) == (
        "Running", "40", "0.4321", "4m10s"
    )  # fmt: skip
    bad = json.dumps({"status": {"progress": {**progress, "percent": 101}}})
    err = kubectl.fails("patch", "tj", "ddp", "--subresource=status", "--type=merge", "-p", bad)
    assert "status.progress.percent" in err


def test_scale_within_and_outside_the_elastic_range(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "-f", str(REPO / "examples" / "elastic-ddp.yaml"))
    kubectl.ok("scale", "tj", "elastic-ddp", "--replicas=4")
    replicas = "jsonpath={.spec.replicaSpecs.worker.replicas}"
    assert kubectl.ok("get", "tj", "elastic-ddp", "-o", replicas) == "4"
    error = kubectl.fails("scale", "tj", "elastic-ddp", "--replicas=5")
    assert "spec.replicaSpecs.worker.replicas must be between" in error


def test_bad_spec_lists_every_field(kubectl: Kubectl) -> None:
    manifest = (REPO / "examples" / "ddp.yaml").read_text()
    bad = (
        manifest.replace("name: ddp  ", "name: ddp-bad ")
        .replace("replicas: 2", "replicas: -2")
        .replace("restartPolicy: OnFailure", "restartPolicy: Sometimes")
    )
    error = kubectl.fails("apply", "-f", "-", stdin=bad)
    assert "spec.replicaSpecs.worker.replicas" in error
    assert "spec.replicaSpecs.worker.restartPolicy" in error


def test_unknown_field_is_refused(kubectl: Kubectl) -> None:
    manifest = (REPO / "examples" / "ps.yaml").read_text()
    bad = manifest.replace("name: ps\n", "name: ps-typo\n").replace(
        "  replicaSpecs:", "  elasticPolicyy: {}\n  replicaSpecs:"
    )
    assert 'unknown field "spec.elasticPolicyy"' in kubectl.fails("apply", "-f", "-", stdin=bad)


def test_forbidden_update_names_the_field(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "-f", str(REPO / "examples" / "elastic-ddp.yaml"))
    patch = '{"spec":{"elasticPolicy":{"rdzvPort":1234}}}'
    error = kubectl.fails("patch", "tj", "elastic-ddp", "--type=merge", "-p", patch)
    assert "spec.elasticPolicy.rdzvPort is immutable" in error
    port = "jsonpath={.spec.elasticPolicy.rdzvPort}"
    assert kubectl.ok("get", "tj", "elastic-ddp", "-o", port) == "29400"
    job = (REPO / "examples" / "ps.yaml").read_text().replace("name: ps\n", f"name: {'x' * 49}\n")
    assert "metadata.name must be at most 48" in kubectl.fails("apply", "-f", "-", stdin=job)
