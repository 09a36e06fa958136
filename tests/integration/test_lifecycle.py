"""The real operator on the sandbox: wiring, success, restarts, run policy, scaling, deletion."""

from __future__ import annotations

import pytest
from operator_harness import Cluster, Operator, condition, training_job

pytestmark = pytest.mark.slow


def test_wiring_reaches_the_process_and_all_workers_succeed(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    cluster.apply(ns, training_job("wire", "env; exit 0", workers=2))
    job = cluster.wait_phase(ns, "wire", "Succeeded", operator=operator)
    logs = cluster.kubectl("logs", "-n", ns, "wire-worker-1").stdout.splitlines()
    env = dict(line.split("=", 1) for line in logs if "=" in line)
    assert env["PET_NODE_RANK"] == "1"
    assert env["RANK"] == "1"
    assert env["WORLD_SIZE"] == "2"
    assert env["PET_NNODES"] == "2"
    assert env["MASTER_ADDR"] == "wire-worker-0.wire"
    assert env["PET_RDZV_ENDPOINT"] == "wire-worker-0.wire:29400"
    assert env["PET_RDZV_ID"] == job["metadata"]["uid"]
    assert env["POD_NAME"] == "wire-worker-1"
    assert env["POD_NAMESPACE"] == ns
    # Children: the headless Service and both pods, owned by the job; completed pods are kept.
    pods = cluster.pods(ns, "wire")
    assert sorted(p["metadata"]["name"] for p in pods) == ["wire-worker-0", "wire-worker-1"]
    (svc,) = cluster.services(ns, "wire")
    assert svc["spec"]["clusterIP"] == "None"
    for child in [*pods, svc]:
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner["uid"] == job["metadata"]["uid"]
    assert job["status"]["replicaStatuses"]["worker"]["succeeded"] == 2
    cluster.wait(
        lambda: {"JobCreated", "JobSucceeded"} <= {e["reason"] for e in cluster.events(ns, "wire")},
        "JobCreated and JobSucceeded events",
    )


def test_chief_success_policy_stops_the_other_workers(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    job = training_job(
        "chief",
        "exec sleep 300",
        workers=2,
        roles={"chief": (1, "exit 0", "OnFailure")},
        successPolicy="Chief",
    )
    cluster.apply(ns, job)
    cluster.wait_phase(ns, "chief", "Succeeded", operator=operator)
    # Workers still running when the chief finished are stopped (cleanPodPolicy None keeps
    # only completed pods).
    cluster.wait(
        lambda: (
            not any(
                p["metadata"]["name"].startswith("chief-worker") for p in cluster.pods(ns, "chief")
            )
        ),
        "running workers deleted",
    )


def test_on_failure_restarts_in_place_and_counts_it(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    once = "[ -f /scratch/failed ] || { touch /scratch/failed; exit 3; }; exit 0"
    cluster.apply(ns, training_job("inplace", once, volumes=[{"name": "scratch", "emptyDir": {}}]))
    job = cluster.wait_phase(ns, "inplace", "Succeeded", operator=operator)
    assert job["status"]["restartCount"] == 1
    (pod,) = cluster.pods(ns, "inplace")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 1


def test_never_fails_the_job_on_the_first_failure(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    cluster.apply(ns, training_job("never", "exit 1", restart="Never"))
    job = cluster.wait_phase(ns, "never", "Failed", operator=operator)
    assert condition(job, "Failed")["reason"] == "PodFailed"
    assert job["status"]["restartCount"] == 0
    # cleanPodPolicy None keeps a failed job's pods for debugging.
    assert [p["metadata"]["name"] for p in cluster.pods(ns, "never")] == ["never-worker-0"]


def test_exit_code_policy_recreates_retryable_and_fails_permanent(
    cluster: Cluster, operator: Operator
) -> None:
    # A hostPath is shared by successive pods of the job on one node (pinned: a real cluster's
    # nodes are separate hosts): the first pod exits 137 (retryable, recreated as a new pod),
    # the second exits 2 (permanent: the job fails). The restricted Pod Security Standard
    # forbids hostPath volumes, so this one namespace is privileged.
    ns = cluster.namespace("exit-code-policy", pod_security="privileged")
    path = f"/tmp/elastrain-test-marks/{ns}"  # noqa: S108 (on the node, for its pods)
    marks = [{"name": "marks", "hostPath": {"path": path, "type": "DirectoryOrCreate"}}]
    script = "[ -f /marks/first ] || { touch /marks/first; exit 137; }; exit 2"
    hostname = cluster.schedulable_node()["metadata"]["labels"]["kubernetes.io/hostname"]
    pin = {"kubernetes.io/hostname": hostname}
    job = training_job("exitcode", script, restart="ExitCode", volumes=marks, node_selector=pin)
    cluster.apply(ns, job)
    job = cluster.wait_phase(ns, "exitcode", "Failed", operator=operator)
    failed = condition(job, "Failed")
    assert failed["reason"] == "ExitCodeNotRetryable"
    assert "2" in failed["message"]
    assert job["status"]["restartCount"] == 1
    cluster.wait(
        lambda: "PodFailed" in {e["reason"] for e in cluster.events(ns, "exitcode")},
        "PodFailed event",
    )


def test_always_restarts_even_on_success_until_backoff_limit(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    # Exit 0 under Always restarts in place; every restart counts, so backoffLimit 2 ends it.
    cluster.apply(
        ns, training_job("always", "exit 0", restart="Always", run_policy={"backoffLimit": 2})
    )
    job = cluster.wait_phase(ns, "always", "Failed", operator=operator)
    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
    assert job["status"]["restartCount"] == 3


def test_backoff_limit_counts_in_place_restarts(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    cluster.apply(ns, training_job("crash", "exit 1", run_policy={"backoffLimit": 2}))
    job = cluster.wait_phase(ns, "crash", "Failed", operator=operator)
    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
    assert job["status"]["restartCount"] == 3
    # Events follow the status write (the plan's fixed order): poll for them.
    cluster.wait(
        lambda: (
            {"ContainerRestarted", "BackoffLimitExceeded"}
            <= {e["reason"] for e in cluster.events(ns, "crash") if e["type"] == "Warning"}
        ),
        "ContainerRestarted and BackoffLimitExceeded warnings",
    )


def test_active_deadline_fails_the_job_and_stops_its_pods(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    cluster.apply(
        ns, training_job("deadline", "exec sleep 300", run_policy={"activeDeadlineSeconds": 2})
    )
    job = cluster.wait_phase(ns, "deadline", "Failed", operator=operator)
    assert condition(job, "Failed")["reason"] == "DeadlineExceeded"
    cluster.wait(lambda: not cluster.pods(ns, "deadline"), "live pods stopped")


def test_ttl_deletes_the_finished_job_and_its_children(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    cluster.apply(ns, training_job("ttl", "exit 0", run_policy={"ttlSecondsAfterFinished": 1}))
    cluster.wait_phase(ns, "ttl", "Succeeded", operator=operator)
    cluster.wait(lambda: cluster.job(ns, "ttl") is None, "job deleted after its TTL")
    cluster.wait(
        lambda: not cluster.pods(ns, "ttl") and not cluster.services(ns, "ttl"),
        "children garbage-collected",
    )


def test_clean_pod_policy_all_deletes_completed_pods(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    cluster.apply(
        ns, training_job("clean", "exit 0", workers=2, run_policy={"cleanPodPolicy": "All"})
    )
    cluster.wait_phase(ns, "clean", "Succeeded", operator=operator)
    cluster.wait(lambda: not cluster.pods(ns, "clean"), "completed pods deleted")
    assert cluster.job(ns, "clean") is not None


def test_suspend_deletes_pods_and_resume_recreates_them(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    cluster.apply(ns, training_job("susp", "exec sleep 300", workers=2))
    cluster.wait_phase(ns, "susp", "Running", operator=operator)
    cluster.kubectl(
        "patch",
        "-n",
        ns,
        "tj",
        "susp",
        "--type=merge",
        "-p",
        '{"spec":{"runPolicy":{"suspend":true}}}',
    )
    job = cluster.wait_phase(ns, "susp", "Suspended", operator=operator)
    assert "startTime" not in job["status"]
    cluster.wait(lambda: not cluster.pods(ns, "susp"), "pods deleted while suspended")
    assert cluster.services(ns, "susp"), "the Service is kept while suspended"
    cluster.kubectl(
        "patch",
        "-n",
        ns,
        "tj",
        "susp",
        "--type=merge",
        "-p",
        '{"spec":{"runPolicy":{"suspend":false}}}',
    )
    job = cluster.wait_phase(ns, "susp", "Running", operator=operator)
    assert job["status"]["startTime"]
    assert len(cluster.pods(ns, "susp")) == 2
    # Suspension deletes are the operator's own: nothing was counted as a restart.
    assert job["status"]["restartCount"] == 0


def test_deleting_the_job_cascades_to_every_child(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    cluster.apply(ns, training_job("gone", "exec sleep 300", workers=3))
    cluster.wait_phase(ns, "gone", "Running", operator=operator)
    cluster.kubectl("delete", "-n", ns, "tj", "gone", "--wait=false")
    cluster.wait(
        lambda: (
            cluster.job(ns, "gone") is None
            and not cluster.pods(ns, "gone")
            and not cluster.services(ns, "gone")
        ),
        "job, pods and service deleted",
    )


def test_invalid_spec_fails_with_an_event_and_creates_nothing(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    # An annotation key that is no qualified name passes the CRD (CEL over annotation keys is
    # too costly for the API server's budget) but not the operator's parser.
    job = training_job("bad", "exit 0", workers=2)
    template = job["spec"]["replicaSpecs"]["worker"]["template"]
    template.setdefault("metadata", {})["annotations"] = {"Not A/qualified name": "x"}
    cluster.apply(ns, job)
    found = cluster.wait_phase(ns, "bad", "Failed", operator=operator)
    assert condition(found, "Failed")["reason"] == "InvalidSpec"
    events = cluster.wait(
        lambda: [e for e in cluster.events(ns, "bad") if e["reason"] == "InvalidSpec"],
        "InvalidSpec event",
    )
    assert events[0]["type"] == "Warning"
    assert events[0]["source"]["component"] == "elastrain-operator"
    assert not cluster.pods(ns, "bad")


def test_kubectl_scale_grows_and_shrinks_an_elastic_job(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    job = training_job(
        "elastic", "exec sleep 300", workers=2, elasticPolicy={"minReplicas": 1, "maxReplicas": 4}
    )
    cluster.apply(ns, job)
    cluster.wait_phase(ns, "elastic", "Running", operator=operator)
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.pods(ns, "elastic")}
    cluster.kubectl("scale", "-n", ns, "tj/elastic", "--replicas=3")
    cluster.wait(lambda: len(cluster.pods(ns, "elastic")) == 3, "a third worker")
    cluster.wait_phase(ns, "elastic", "Running", operator=operator)
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.pods(ns, "elastic")}
    # Elastic: the running workers keep running (same uids), c10d absorbs the new one.
    assert {k: after[k] for k in before} == before
    cluster.kubectl("scale", "-n", ns, "tj/elastic", "--replicas=1")
    cluster.wait(
        lambda: (
            [p["metadata"]["name"] for p in cluster.pods(ns, "elastic")] == ["elastic-worker-0"]
        ),
        "highest indices removed",
    )
    job_after = cluster.wait_phase(ns, "elastic", "Running", operator=operator)
    assert job_after["status"]["restartCount"] == 0


def test_elastic_workers_pending_past_their_timeout_are_reported_until_they_run(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    # Every worker asks for a node label nobody has yet: all stay Pending (Unschedulable) and
    # the job stays Created, as it would waiting for a cluster autoscaler's new node.
    label = f"elastrain.dev/test-pending-{ns}"
    job = training_job(
        "pending",
        "exec sleep 300",
        workers=2,
        node_selector={label: "yes"},
        elasticPolicy={"minReplicas": 1, "maxReplicas": 2, "pendingTimeoutSeconds": 1},
    )
    cluster.apply(ns, job)

    def reported() -> dict[str, object] | None:
        cond = condition(cluster.job(ns, "pending"), "WorkersPending")
        return cond if cond is not None and cond["status"] == "True" else None

    cond = cluster.wait(reported, "WorkersPending=True")
    assert cond["reason"] == "PendingTimeout"
    assert "Unschedulable" in str(cond["message"])
    assert "0 of 2 workers running" in str(cond["message"])
    cluster.wait(
        lambda: "WorkersPending" in {e["reason"] for e in cluster.events(ns, "pending")},
        "a WorkersPending event",
    )
    assert cluster.job(ns, "pending")["status"]["phase"] == "Created"
    # A node gets the label: the workers are scheduled, run, and the condition clears.
    node = cluster.schedulable_node()["metadata"]["name"]
    cluster.kubectl("label", "node", node, f"{label}=yes")
    try:
        cluster.wait_phase(ns, "pending", "Running", operator=operator)
        cleared = cluster.wait(
            lambda: (
                (cond := condition(cluster.job(ns, "pending"), "WorkersPending")) is not None
                and cond["status"] == "False"
                and cond
            ),
            "WorkersPending=False",
        )
        assert cleared["reason"] == "WorkersScheduled"
        assert cluster.job(ns, "pending")["status"]["restartCount"] == 0
    finally:
        cluster.kubectl("label", "node", node, f"{label}-")


def test_trim_pending_workers_gives_them_up_until_the_count_changes(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    """elasticPolicy.trimPendingWorkers: past the timeout, the Pending workers above
    minReplicas are deleted and not recreated; the spec keeps its count, and changing that count
    ends the trim."""
    label = f"elastrain.dev/test-trim-{ns}"
    elastic = {
        "minReplicas": 1,
        "maxReplicas": 3,
        "pendingTimeoutSeconds": 1,
        "trimPendingWorkers": True,
    }
    job = training_job(
        "trim", "exec sleep 300", workers=3, node_selector={label: "yes"}, elasticPolicy=elastic
    )
    cluster.apply(ns, job)

    def trimmed() -> dict[str, object] | None:
        cond = condition(cluster.job(ns, "trim"), "WorkersPending")
        return cond if cond is not None and cond["reason"] == "WorkersTrimmed" else None

    cond = cluster.wait(trimmed, "WorkersPending=True (WorkersTrimmed)")
    assert "trimmed to 1 of 3 workers" in str(cond["message"])
    cluster.wait(
        lambda: [p["metadata"]["name"] for p in cluster.pods(ns, "trim")] == ["trim-worker-0"],
        "only worker 0 left",
    )
    node = cluster.schedulable_node()["metadata"]["name"]
    cluster.kubectl("label", "node", node, f"{label}=yes")
    try:
        done = cluster.wait_phase(ns, "trim", "Running", operator=operator)
        assert done["spec"]["replicaSpecs"]["worker"]["replicas"] == 3
        assert done["status"]["restartCount"] == 0
        assert [p["metadata"]["name"] for p in cluster.pods(ns, "trim")] == ["trim-worker-0"]
        # A new count (kubectl scale, an HPA) is a new wish: planned from scratch.
        cluster.kubectl("-n", ns, "scale", "trainingjob", "trim", "--replicas=2")
        cluster.wait(lambda: len(cluster.pods(ns, "trim")) == 2, "worker 1 created again")
    finally:
        cluster.kubectl("label", "node", node, f"{label}-")
