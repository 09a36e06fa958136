"""What the tests of the real trainer under the operator share: the job's checkpoint volume, and
killing a pod's processes on this host."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from cluster_api import Api, resource_path
from elastrain_sandbox.agent.container import processes_with_marker
from operator_harness import Cluster

CLAIM = "elastic-ckpt"
TRAINER_IMAGE = "ghcr.io/elastrain/trainer:0.1.0"


def shared_claim(cluster: Cluster, ns: str) -> None:
    """The job's RWX checkpoint volume. The node agent backs every claim with one host dir
    shared by all its nodes; the real control plane's scheduler also needs the claim Bound,
    so there a PersistentVolume is pre-bound to it."""
    claim: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    if cluster.kind == "real":
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{ns}-ckpt"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": f"/elastrain-test/{ns}"},
                "claimRef": {"namespace": ns, "name": CLAIM},
            },
        }
        path = resource_path("v1", "persistentvolumes")
        Api.check(cluster.api.call("POST", path, volume), "POST", path)
        claim["spec"]["volumeName"] = f"{ns}-ckpt"
    path = resource_path("v1", "persistentvolumeclaims", ns)
    Api.check(cluster.api.call("POST", path, claim), "POST", path)
    if cluster.kind == "real":
        cluster.wait(
            lambda: (
                ((cluster.api.get(f"{path}/{CLAIM}") or {}).get("status") or {}).get("phase")
                == "Bound"
            ),
            "the checkpoint claim Bound",
        )


def kill_container(pod: dict[str, Any]) -> list[int]:
    """SIGKILL every process of the pod's container (torchrun's agent and its trainer): the
    container crashes with 137, as on an OOM kill or a segfault of the launcher."""
    status = (pod["status"].get("containerStatuses") or [{}])[0]
    container = str(status.get("containerID", "")).split("://", 1)[-1]
    pids = processes_with_marker(container) if container else []
    assert pids, f"no process of {pod['metadata']['name']}'s container on this host: {status}"
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids
