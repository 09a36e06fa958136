"""The real trainer (``elastrain-train`` under ``elastrain-torchrun``, CPU and gloo) in an elastic
job under the real operator, through what elastic training is for: scaling 2 -> 4 -> 2 while
it trains, a worker's processes killed, worker-0 evicted, a worker's pod deleted and a worker's
node removed.

Training is judged by the trainer's own gauges, scraped from each pod's endpoint
(``elastrain_dev.trainer_gauges``), never by pod phases: a Running pod may be waiting for a
rendezvous. What counts is checked after each event: only the crash is a restart the operator
counts; a scale-down spends not even one of torchrun's ``maxRestarts``; and every new round
resumes from the newest checkpoint, on the job's shared (RWX) checkpoint volume.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from cluster_api import Api
from elastrain_dev.trainer_gauges import METRICS_PORT, Reading, one_round, scrape_pods
from elastrain_sandbox.admin import NodeAdmin
from operator_harness import Cluster, Operator, condition
from trainer_harness import CLAIM, TRAINER_IMAGE, kill_container, shared_claim

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),  # one job through seven events; each wait has its own deadline
    pytest.mark.clusters(
        "embedded",
        "real",
        reason="scrapes trainer endpoints at pod IPs from this host, kills pod processes on it "
        "and mounts a host-backed shared volume",
    ),
]

JOB = "elastic"
CHECKPOINT_EVERY = 10
# Paced at most 20 steps/s, so that four trainers leave this 2-core machine to the control
# plane; enough steps that the job cannot finish before the last event (each event consumes
# at most a few hundred: the old round trains on while new pods start), few enough that it
# ends soon after. `_enough_left` says so plainly if a slow machine ever disproves that.
STEPS = 300
STEP_DELAY = 0.05
MARGIN = 100  # steps that must be left before each event


def trainer_job(workers: int = 2, gpus: int = 0, **elastic: int) -> dict[str, Any]:
    """``workers`` of 1..4 (one GPU each if ``gpus``); checkpoints every 10 steps to the
    shared claim; backoffLimit 1; ``elastic`` adds to the elasticPolicy."""
    args = f"--mode ddp --model mlp --steps {STEPS} --lr 0.01 --step-delay {STEP_DELAY}"
    args += f" --log-every 100 --checkpoint-every {CHECKPOINT_EVERY} --checkpoint-dir /ckpt"
    args += f" --metrics-port {METRICS_PORT}"
    container = {
        "name": "trainer",
        "image": TRAINER_IMAGE,
        "command": ["elastrain-torchrun", "--no-python", "elastrain-train"],
        "args": args.split(),
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            **({"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}),
        },
        "volumeMounts": [{"name": "ckpt", "mountPath": "/ckpt"}],
    }
    pod = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "ckpt", "persistentVolumeClaim": {"claimName": CLAIM}}],
    }
    return {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": JOB},
        "spec": {
            "elasticPolicy": {
                "minReplicas": 1,
                "maxReplicas": 4,
                # torchrun's in-place restarts: the crash's consequences in the other pods
                # spend these; a scale-down or an eviction must spend none.
                "maxRestarts": 3,
                "lastCallTimeoutSeconds": 1,
                **elastic,
            },
            "replicaSpecs": {
                "worker": {
                    "replicas": workers,
                    "restartPolicy": "OnFailure",
                    "template": {"spec": pod},
                }
            },
            # One counted restart is allowed: the crash. A second (an eviction or a deletion
            # counted by mistake) fails the job.
            "runPolicy": {
                "backoffLimit": 1,
                "restartBackoff": {"initialSeconds": 0, "maxSeconds": 0},
            },
        },
    }


class Training:
    """The job's pods and their trainers' gauges; a timeout explains what was last seen."""

    def __init__(self, cluster: Cluster, operator: Operator, ns: str) -> None:
        self.cluster, self.operator, self.ns = cluster, operator, ns
        self.pods: list[dict[str, Any]] = []
        self.last: list[Reading] = []
        self.started = time.monotonic()
        self.marks: list[str] = []

    def mark(self, what: str, reading: Reading | None) -> None:
        """A phase reached: printed (shown with -s, or on a failure) with its time and step."""
        at = f" at step {reading.step}, round {reading.round}" if reading else ""
        self.marks.append(f"{time.monotonic() - self.started:6.1f}s {what}{at}")
        print(self.marks[-1], flush=True)

    def read(self) -> list[Reading]:
        self.pods = self.cluster.pods(self.ns, JOB)
        self.last = scrape_pods(self.pods)
        return self.last

    def until(self, what: str, check: Callable[[list[Reading]], Any], timeout: float) -> Any:
        try:
            return self.cluster.wait(lambda: check(self.read()), what, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.describe()}") from None

    def at(self, world: int, after_round: int, timeout: float = 150) -> Reading:
        """Every one of ``world`` ranks trains in one round newer than ``after_round``."""

        def check(readings: list[Reading]) -> Reading | None:
            got = one_round(readings, world)
            return got if got is not None and got.round > after_round else None

        reading: Reading = self.until(
            f"{world} ranks training in a round after {after_round}", check, timeout
        )
        return reading

    def status(self) -> dict[str, Any]:
        return dict((self.cluster.job(self.ns, JOB) or {}).get("status") or {})

    def describe(self) -> str:
        status = self.status()
        lines = [
            "phases: " + "; ".join(self.marks),
            f"gauges: {[r.__dict__ for r in self.last] or 'no endpoint answered'}",
            f"job: phase {status.get('phase')!r} restartCount {status.get('restartCount')} "
            f"replicas {json.dumps(status.get('replicaStatuses'))}",
        ]
        for pod in self.pods:
            name = pod["metadata"]["name"]
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            states = [(s.get("restartCount"), list(s.get("state") or {})) for s in statuses]
            logs = self.cluster.kubectl("logs", "-n", self.ns, name, "--tail=6", check=False)
            lines.append(f"{name} {pod['status'].get('phase')} {states}: {logs.stdout.strip()}")
        lines.append("operator log:\n" + self.operator.log_tail(30))
        return "\n".join(lines)


def _enough_left(reading: Reading, event: str) -> None:
    assert reading.step <= STEPS - MARGIN, (
        f"the job is at step {reading.step} of {STEPS} before {event}: too close to its end "
        "for the event to happen while it trains (raise STEPS)"
    )


def _uids(training: Training) -> dict[str, str]:
    return {
        p["metadata"]["name"]: p["metadata"]["uid"] for p in training.cluster.pods(training.ns, JOB)
    }


def _evict(cluster: Cluster, ns: str, pod: str) -> None:
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": ns},
    }
    path = f"/api/v1/namespaces/{ns}/pods/{pod}/eviction"
    Api.check(cluster.api.call("POST", path, body), "POST", "eviction")


def _replaced(
    training: Training, before: dict[str, str], names: list[str]
) -> Callable[[list[Reading]], Reading | None]:
    """A check: each of ``names`` is a new pod (not the uid in ``before``) and 2 ranks train
    in one round."""

    def check(readings: list[Reading]) -> Reading | None:
        now = {p["metadata"]["name"]: p["metadata"]["uid"] for p in training.pods}
        if any(now.get(name) in (None, before.get(name)) for name in names):
            return None
        return one_round(readings, 2)

    return check


def test_an_elastic_job_trains_through_scaling_a_crash_and_disruptions(
    nodes: NodeAdmin, cluster: Cluster, operator: Operator, ns: str
) -> None:
    shared_claim(cluster, ns)
    cluster.apply(ns, trainer_job())
    training = Training(cluster, operator, ns)
    start = training.at(2, after_round=-1, timeout=180)
    training.mark("training at world size 2", start)

    # Scale-up 2 -> 4: the new indices join the next round; nothing is counted.
    _enough_left(start, "the scale-up")
    cluster.kubectl("-n", ns, "scale", "trainingjob", JOB, "--replicas=4")
    four = training.at(4, after_round=start.round)
    training.mark("scaled up, training at world size 4", four)
    assert {r.restarts for r in training.last if r.round == four.round} == {0}
    assert four.checkpoint >= start.checkpoint  # resumed from the newest, not from scratch

    # Scale-down 4 -> 2: the highest indices go; the survivors re-rendezvous without spending
    # one of torchrun's restarts (TORCHELASTIC_RESTART_COUNT stays 0 in every rank).
    _enough_left(four, "the scale-down")
    cluster.kubectl("-n", ns, "scale", "trainingjob", JOB, "--replicas=2")
    two = training.at(2, after_round=four.round)
    training.mark("scaled down, training at world size 2", two)
    ranks = [r for r in training.last if r.round == two.round]
    assert {r.restarts for r in ranks} == {0}, training.describe()
    assert sorted(r.pod for r in ranks) == [f"{JOB}-worker-0", f"{JOB}-worker-1"]
    assert two.checkpoint >= four.checkpoint
    training.until("the removed pods gone", lambda _: len(training.pods) == 2, 60)
    assert training.status().get("restartCount") == 0

    # worker-1's processes are killed: its container crashes and restarts in place. The one
    # restart that counts (it comes first: a crash within a minute of a disruption's recovery
    # is taken for the disruption's consequence, docs/lifecycle.md).
    _enough_left(two, "the crash")
    pod = next(p for p in training.pods if p["metadata"]["name"] == f"{JOB}-worker-1")
    kill_container(pod)
    cluster.wait(lambda: training.status().get("restartCount") == 1, "the crash counted")
    crashed = training.at(2, after_round=two.round, timeout=180)
    training.mark("crashed worker-1 restarted in place, training", crashed)
    assert crashed.checkpoint >= two.checkpoint

    # worker-0 is evicted: it hosts the rendezvous, so worker-1's agent fails too. Replaced;
    # neither the eviction nor the restart it causes in worker-1 is counted.
    _enough_left(crashed, "the eviction")
    before = _uids(training)
    _evict(cluster, ns, f"{JOB}-worker-0")
    evicted = training.until(
        "worker-0 replaced and 2 ranks training",
        _replaced(training, before, [f"{JOB}-worker-0"]),
        180,
    )
    training.mark("evicted worker-0 replaced, training", evicted)
    assert evicted.checkpoint >= crashed.checkpoint
    assert training.status().get("restartCount") == 1, training.describe()

    # worker-1's pod is deleted (kubectl delete pod): replaced, not counted.
    _enough_left(evicted, "the pod deletion")
    before = _uids(training)
    cluster.kubectl("-n", ns, "delete", "pod", f"{JOB}-worker-1", "--wait=false")
    deleted = training.until(
        "worker-1 replaced and 2 ranks training",
        _replaced(training, before, [f"{JOB}-worker-1"]),
        180,
    )
    training.mark("deleted worker-1 replaced, training", deleted)
    assert deleted.checkpoint >= evicted.checkpoint
    assert training.status().get("restartCount") == 1, training.describe()

    # The node under worker-1 is removed (with worker-0 too, if both ran there). Training goes
    # on from the newest checkpoint, at world size 1 until a replacement joins, and nothing is
    # counted. The job may well finish before the replacement comes (the real control plane's
    # pod GC waits 40 s for a vanished node's pods): that replacements come is
    # test_disruption's job.
    _enough_left(deleted, "the node removal")
    before = _uids(training)
    node = next(p for p in training.pods if p["metadata"]["name"] == f"{JOB}-worker-1")["spec"][
        "nodeName"
    ]
    lost = [p["metadata"]["name"] for p in training.pods if p["spec"].get("nodeName") == node]
    nodes.remove_node(node)

    def resumed(readings: list[Reading]) -> Reading | None:
        now = {p["metadata"]["name"]: p["metadata"]["uid"] for p in training.pods}
        for r in readings:
            new_pod = r.pod in lost and now.get(r.pod) != before.get(r.pod)
            if r.trained and (new_pod or (r.pod not in lost and r.round > deleted.round)):
                return r
        return None

    def resumed_or_done(readings: list[Reading]) -> Reading | str | None:
        phase = training.status().get("phase")
        return "Succeeded" if phase == "Succeeded" else resumed(readings)

    try:
        moved = training.until(f"training again after {lost} were lost", resumed_or_done, 240)
        if isinstance(moved, Reading):
            training.mark(f"node {node} removed, training at world {moved.world_size}", moved)
            assert moved.checkpoint >= deleted.checkpoint
        assert training.status().get("restartCount") == 1, training.describe()
        job = cluster.wait_phase(ns, JOB, "Succeeded", timeout=240, operator=operator)
    finally:
        nodes.add_node(node)
    training.mark("Succeeded", None)
    assert job["status"]["restartCount"] == 1, training.describe()
    # The loss fell over the whole run, across every world size (rank 0's summary).
    summaries = [
        json.loads(line)
        for p in cluster.pods(ns, JOB)
        for line in cluster.kubectl(
            "logs", "-n", ns, p["metadata"]["name"], check=False
        ).stdout.splitlines()
        if line.startswith("{") and '"status": "completed"' in line
    ]
    assert summaries, training.describe()
    summary = summaries[0]
    assert summary["steps"] == STEPS and summary["world_size"] in (1, 2)
    # The last round resumed from a checkpoint at least as new as any seen before the loss.
    assert summary["resumed_from_step"] >= deleted.checkpoint, summary
    assert summary["final_loss"] < summary["first_loss"] / 2, summary


def test_elastic_start_runs_at_min_and_pending_workers_join_when_a_gpu_node_comes(
    nodes: NodeAdmin, cluster: Cluster, operator: Operator, ns: str
) -> None:
    """3 workers of one GPU each, on a cluster with one GPU: the job trains at world size 1,
    its 2 Pending workers block nothing and are reported after pendingTimeoutSeconds; a node
    with 2 GPUs is added (what a cluster autoscaler does), and they join the next round."""
    small, big = f"gpu1-{ns}"[:63], f"gpu2-{ns}"[:63]
    shared_claim(cluster, ns)
    nodes.add_node(small, gpus=1)
    added = [small]
    try:
        cluster.apply(ns, trainer_job(workers=3, gpus=1, pendingTimeoutSeconds=1))
        training = Training(cluster, operator, ns)
        alone = training.at(1, after_round=-1, timeout=180)
        training.mark("training at world size 1 on the one GPU", alone)
        job = cluster.wait_phase(ns, JOB, "Running", operator=operator)
        assert job["status"]["replicaStatuses"]["worker"]["pending"] == 2, job["status"]
        cond = cluster.wait(
            lambda: (
                (c := condition(cluster.job(ns, JOB), "WorkersPending")) is not None
                and c["status"] == "True"
                and c
            ),
            "WorkersPending=True",
        )
        assert cond["reason"] == "PendingTimeout", cond

        _enough_left(alone, "the new node")
        nodes.add_node(big, gpus=2)
        added.append(big)
        three = training.at(3, after_round=alone.round, timeout=180)
        training.mark("a 2-GPU node added, training at world size 3", three)
        assert three.checkpoint >= alone.checkpoint
        assert {r.restarts for r in training.last if r.round == three.round} == {0}
        cleared = cluster.wait(
            lambda: (
                (c := condition(cluster.job(ns, JOB), "WorkersPending")) is not None
                and c["status"] == "False"
                and c
            ),
            "WorkersPending=False",
        )
        assert cleared["reason"] == "WorkersScheduled", cleared
        job = cluster.wait_phase(ns, JOB, "Succeeded", timeout=240, operator=operator)
        training.mark("Succeeded", None)
        assert job["status"]["restartCount"] == 0, training.describe()
    finally:
        for name in added:
            nodes.remove_node(name)
