"""The indexes keep pods slim: everything the operator reads of a pod survives ``slim``."""

from __future__ import annotations

import copy
from typing import Any

from elastrain.api.quantity import pod_requests
from elastrain.controller.monitor import metrics_port
from elastrain.controller.store import Store, slim
from elastrain.planner.observe import observe_pods

OWNER = {
    "apiVersion": "elastrain.dev/v1alpha1",
    "kind": "TrainingJob",
    "name": "mnist",
    "uid": "job-uid",
    "controller": True,
}


def full_pod() -> dict[str, Any]:
    """A pod as the API server returns it, with the fields a real one carries."""
    env = [{"name": f"VAR_{i}", "value": "x" * 40} for i in range(20)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "mnist-worker-0",
            "namespace": "team-a",
            "uid": "pod-uid",
            "creationTimestamp": "2026-12-05T08:00:00Z",
            "deletionTimestamp": "2026-12-05T08:01:00Z",
            "labels": {
                "elastrain.dev/job-name": "mnist",
                "elastrain.dev/replica-type": "worker",
                "elastrain.dev/replica-index": "0",
            },
            "annotations": {"elastrain.dev/topology": "abc"},
            "ownerReferences": [OWNER],
            "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:x": {}}}],
        },
        "spec": {
            "nodeName": "node-1",
            "overhead": {"cpu": "250m"},
            "serviceAccountName": "default",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}],
            "volumes": [{"name": "kube-api-access", "projected": {"sources": [{}] * 3}}],
            "initContainers": [
                {
                    "name": "log-shipper",
                    "image": "shipper",
                    "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "100m"}},
                    "env": env,
                },
                {"name": "fetch", "image": "busybox", "resources": {"limits": {"cpu": "4"}}},
            ],
            "containers": [
                {
                    "name": "trainer",
                    "image": "trainer",
                    "command": ["torchrun", "--nproc-per-node", "1", "train.py"],
                    "env": env,
                    "ports": [{"name": "metrics", "containerPort": 9090}],
                    "resources": {"limits": {"nvidia.com/gpu": "2", "cpu": "2"}},
                    "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run"}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 9090}},
                }
            ],
        },
        "status": {
            "phase": "Failed",
            "reason": "Evicted",
            "conditions": [
                {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"},
                {"type": "Ready", "status": "False"},
            ],
            "initContainerStatuses": [
                {"name": "log-shipper", "restartCount": 9, "state": {"running": {}}},
                {"name": "fetch", "restartCount": 1, "state": {"terminated": {"exitCode": 0}}},
            ],
            "containerStatuses": [
                {"name": "trainer", "restartCount": 3, "state": {"terminated": {"exitCode": 137}}}
            ],
            "podIP": "10.0.0.7",
        },
    }


def test_the_planner_sees_a_slim_pod_as_the_full_one() -> None:
    pod = full_pod()
    kept = slim(pod)
    full_view = observe_pods([pod], "mnist", "job-uid").pods
    slim_view = observe_pods([kept], "mnist", "job-uid").pods
    assert full_view == slim_view and len(full_view) == 1
    (view,) = slim_view
    # The fields that matter really were read: sidecar left out, disruption, exits, restarts.
    assert view.restarts == 4 and view.disruption == "EvictionByEvictionAPI"
    assert view.exits == (("trainer", 137),) and view.created is not None


def test_metrics_and_progress_read_the_same_from_a_slim_pod() -> None:
    pod = full_pod()
    kept = slim(pod)
    assert metrics_port(kept["spec"]) == metrics_port(pod["spec"]) == 9090
    assert pod_requests(kept["spec"]) == pod_requests(pod["spec"])
    assert kept["status"] == pod["status"]


def test_a_slim_pod_drops_what_nobody_reads_and_leaves_the_original_alone() -> None:
    pod = full_pod()
    before = copy.deepcopy(pod)
    kept = slim(pod)
    assert pod == before
    assert "managedFields" not in kept["metadata"]
    assert set(kept["spec"]) == {"nodeName", "overhead", "initContainers", "containers"}
    (trainer,) = kept["spec"]["containers"]
    assert set(trainer) == {"name", "ports", "resources"}


def test_other_kinds_keep_their_spec() -> None:
    service = {"kind": "Service", "metadata": {"name": "mnist"}, "spec": {"clusterIP": "None"}}
    assert slim(service)["spec"] == {"clusterIP": "None"}


def test_a_buried_ghost_is_hidden_by_uid_and_a_namesake_is_not() -> None:
    """``Store.bury`` (the ghost sweep) hides the one object, in every view, and nothing else:
    a pod recreated under the same name has a new uid and shows."""
    key = ("team-a", "mnist")
    job = {"metadata": {"name": "mnist", "namespace": "team-a", "uid": "job-uid"}}
    ghost = {"metadata": {"name": "mnist-worker-1", "uid": "old"}}
    other = {"metadata": {"name": "mnist-worker-0", "uid": "w0"}}
    pods = {key: [other, ghost]}
    store = Store({key: [job]}, pods, {}, None)
    store.bury("old")
    assert store.pods(key) == [other]
    assert store.objects("Pod", key) == [other]
    pods[key] = [other, ghost, {"metadata": {"name": "mnist-worker-1", "uid": "new"}}]
    assert [p["metadata"]["uid"] for p in store.pods(key)] == ["w0", "new"]
    assert store.job_keys() == [key]
    store.bury("job-uid")
    assert store.job(key) is None and store.job_keys() == []


def test_a_buried_uid_is_forgotten_once_no_index_holds_it() -> None:
    """``Store.prune`` keeps a buried uid while its ghost is still indexed (it must stay
    hidden) and forgets it once a namesake replaced it, so the set cannot grow without bound."""
    key = ("team-a", "mnist")
    ghost = {"metadata": {"name": "mnist-worker-1", "uid": "old"}}
    pods = {key: [ghost]}
    store = Store({}, pods, {}, None)
    store.bury("old")
    store.bury("never-indexed")
    assert store.prune() == 1 and store.buried() == 1
    assert store.pods(key) == []
    pods[key] = [{"metadata": {"name": "mnist-worker-1", "uid": "new"}}]
    assert store.prune() == 1 and store.buried() == 0
    assert [p["metadata"]["uid"] for p in store.pods(key)] == ["new"]
