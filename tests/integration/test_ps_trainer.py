"""The real trainer in parameter-server mode under the real operator: 2 ps and 2 workers
(``elastrain-train --mode ps``, one process per pod, wired by the operator's TF_CONFIG). A
worker that crashes mid-run is replaced while the job trains on; then a ps crashes: its
container restarts in place (restartPolicy OnFailure) from its shard's checkpoint, and the
workers wait for it at the same address and train on.

Before the ps transport became plain HTTP, the replacement could not join torch RPC's group and
the job failed with ``ExitCodeNotRetryable``; now the new pod joins, trains and finishes, and
the job Succeeds with the one crash counted.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from elastrain_dev.trainer_gauges import METRICS_PORT, scrape_pods
from operator_harness import Cluster, Operator
from trainer_harness import CLAIM, TRAINER_IMAGE, kill_container, shared_claim

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.clusters(
        "embedded",
        "real",
        reason="scrapes trainer endpoints at pod IPs from this host, kills pod processes on it "
        "and mounts a host-backed shared volume",
    ),
]

JOB = "async"
STEPS = 1000  # a global step is one push per worker: 2000 pushes, 50 s or more at this pace
ARGS = (
    f"--mode ps --model mlp --steps {STEPS} --batch-size 32 --lr 0.05 --staleness 4 "
    f"--step-delay 0.05 --log-every 50 --metrics-port {METRICS_PORT}"
)


def _role(replicas: int, policy: str, args: str, volume: bool) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "trainer",
        "image": TRAINER_IMAGE,
        "command": ["elastrain-train"],
        "args": args.split(),
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
    }
    pod: dict[str, Any] = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    if volume:
        container["volumeMounts"] = [{"name": "ckpt", "mountPath": "/ckpt"}]
        pod["volumes"] = [{"name": "ckpt", "persistentVolumeClaim": {"claimName": CLAIM}}]
    return {"replicas": replicas, "restartPolicy": policy, "template": {"spec": pod}}


def ps_job() -> dict[str, Any]:
    ps_args = f"{ARGS} --checkpoint-every 10 --checkpoint-dir /ckpt"
    return {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": JOB},
        "spec": {
            "replicaSpecs": {
                "ps": _role(2, "OnFailure", ps_args, volume=True),
                # As examples/ps.yaml: a worker killed by a signal (137) is recreated.
                "worker": _role(2, "ExitCode", ARGS, volume=False),
            },
            "runPolicy": {
                "backoffLimit": 2,  # the two crashes are the restarts allowed
                "restartBackoff": {"initialSeconds": 0, "maxSeconds": 0},
            },
        },
    }


def _finished(cluster: Cluster, ns: str) -> dict[str, Any] | None:
    job = cluster.job(ns, JOB)
    phase = ((job or {}).get("status") or {}).get("phase")
    return job if phase in ("Succeeded", "Failed") else None


def _wait_log(cluster: Cluster, ns: str, pod: str, line: str) -> None:
    """Until ``pod``'s log shows ``line`` (a failed ``kubectl logs`` is asked again)."""
    last: list[str] = [""]

    def shown() -> bool:
        proc = cluster.kubectl("logs", "-n", ns, pod, check=False)
        last[0] = proc.stdout[-2000:] + proc.stderr
        return line in proc.stdout

    try:
        cluster.wait(shown, f"{line!r} in {pod}'s log", timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{last[0]}") from None


def _step(pods: list[dict[str, Any]], name: str) -> int:
    pod = next((p for p in pods if p["metadata"]["name"] == name), None)
    return max((r.step for r in scrape_pods([pod])), default=0) if pod else 0


def test_a_crashed_worker_is_replaced_a_crashed_ps_resumes_and_the_job_succeeds(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    shared_claim(cluster, ns)
    cluster.apply(ns, ps_job())
    worker1 = f"{JOB}-worker-1"

    def worker1_pushed() -> dict[str, Any] | None:
        pods = cluster.pods(ns, JOB)
        pod = next((p for p in pods if p["metadata"]["name"] == worker1), None)
        steps = [r.step for r in scrape_pods([pod])] if pod else []
        return pod if steps and steps[0] >= 20 else None

    pod = cluster.wait(worker1_pushed, "worker-1 training (job step 20)", timeout=180)
    first_uid = pod["metadata"]["uid"]
    kill_container(pod)
    cluster.wait(
        lambda: (cluster.job(ns, JOB) or {}).get("status", {}).get("restartCount") == 1,
        "the crash counted",
    )

    def replacement_trains() -> bool:
        pods = {p["metadata"]["name"]: p for p in cluster.pods(ns, JOB)}
        new = pods.get(worker1)
        if new is None or new["metadata"]["uid"] == first_uid:
            return False
        return any(r.step > 0 for r in scrape_pods([new]))

    cluster.wait(replacement_trains, "a new worker-1 pod training", timeout=120)
    # ps-0 dies: it restarts in place from its checkpoint; the workers reconnect to it.
    step = _step(cluster.pods(ns, JOB), f"{JOB}-worker-0")
    assert step < STEPS - 100, f"the job is at step {step} of {STEPS}: raise STEPS"
    ps0 = next(p for p in cluster.pods(ns, JOB) if p["metadata"]["name"] == f"{JOB}-ps-0")
    kill_container(ps0)
    cluster.wait(
        lambda: (cluster.job(ns, JOB) or {}).get("status", {}).get("restartCount") == 2,
        "the ps crash counted",
    )
    # Read now: a ps still running when every worker has succeeded is stopped and deleted.
    _wait_log(cluster, ns, f"{JOB}-ps-0", "ps-0 resumed at version")
    job = cluster.wait(lambda: _finished(cluster, ns), "the job finished", timeout=300)
    events = [
        f"{e.get('reason')}: {e.get('message')}"
        for e in cluster.api.items(f"/api/v1/namespaces/{ns}/events")
        if (e.get("involvedObject") or {}).get("kind") == "TrainingJob"
    ]
    logs = {
        name: cluster.kubectl("logs", "-n", ns, name, "--tail=15", check=False).stdout
        for name in (f"{JOB}-worker-0", f"{JOB}-worker-1", f"{JOB}-ps-0")
    }
    assert job["status"]["phase"] == "Succeeded", "\n".join(events) + f"\n{logs}"
    assert job["status"]["restartCount"] == 2, "\n".join(events)
    _wait_log(cluster, ns, f"{JOB}-worker-0", "reconnected to every parameter server")
    summaries = [
        json.loads(line)
        for line in cluster.kubectl(
            "logs", "-n", ns, f"{JOB}-worker-0", check=False
        ).stdout.splitlines()
        if line.startswith("{") and '"status": "completed"' in line
    ]
    assert summaries, job["status"]
    summary = summaries[0]
    assert (summary["mode"], summary["steps"], summary["ps_replicas"]) == ("ps", STEPS, 2)
    assert summary["resumed_from_step"] > 0, summary  # from the checkpoints, not from scratch
    assert summary["final_loss"] < summary["first_loss"] / 2, summary
