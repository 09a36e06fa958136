"""The built children: names, labels, owner references, scheduling and GPU fields."""

from __future__ import annotations

import copy

from elastrain.api.parse import parse_training_job
from elastrain.planner import children
from elastrain.planner.model import Observed
from elastrain.planner.plan import plan
from planner_world import T0, World, container, make_job, replica

JOB_LABEL = "elastrain.dev/job-name"


def first_plan(job: dict, *, crd: bool = False) -> tuple[World, dict[str, dict]]:
    world = World(job, crd=crd)
    p = world.step()
    return world, {f"{o['kind']}/{o['metadata']['name']}": o for o in p.creates}


def test_service_is_headless_publishes_not_ready_and_selects_the_job() -> None:
    _, created = first_plan(make_job())
    svc = created["Service/mnist"]
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {JOB_LABEL: "mnist"}
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert ports == {"rdzv": 29400, "master": 23456, "tf": 2222}


def test_elastic_rdzv_port_is_served() -> None:
    job = make_job(workers=2, elasticPolicy={"minReplicas": 1, "maxReplicas": 4, "rdzvPort": 31000})
    _, created = first_plan(job)
    ports = {p["name"]: p["port"] for p in created["Service/mnist"]["spec"]["ports"]}
    assert ports["rdzv"] == 31000


def test_pods_have_deterministic_names_hostnames_labels_and_owner() -> None:
    _, created = first_plan(make_job(workers=3))
    assert sorted(k for k in created if k.startswith("Pod/")) == [
        "Pod/mnist-worker-0",
        "Pod/mnist-worker-1",
        "Pod/mnist-worker-2",
    ]
    pod = created["Pod/mnist-worker-2"]
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["namespace"] == "team-a"
    assert spec["hostname"] == "mnist-worker-2" and spec["subdomain"] == "mnist"
    assert meta["labels"] == {
        JOB_LABEL: "mnist",
        "elastrain.dev/replica-type": "worker",
        "elastrain.dev/replica-index": "2",
        "app.kubernetes.io/managed-by": "elastrain",
    }
    (owner,) = meta["ownerReferences"]
    assert owner == {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "name": "mnist",
        "uid": "job-uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert meta["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    # Every child carries the owner reference, the Service included.
    assert created["Service/mnist"]["metadata"]["ownerReferences"] == [owner]


def test_user_template_labels_annotations_and_fields_are_kept() -> None:
    role = replica(1)
    role["template"]["metadata"] = {"labels": {"team": "vision"}, "annotations": {"a": "b"}}
    role["template"]["spec"]["nodeSelector"] = {"gpu": "a100"}
    job = make_job(roles={"worker": role})
    original = copy.deepcopy(job)
    plan(job, Observed(now=T0))
    assert job == original  # the planner copies the template, never mutates its input
    _, created = first_plan(job)
    pod = created["Pod/mnist-worker-0"]
    assert pod["metadata"]["labels"]["team"] == "vision"
    assert pod["metadata"]["annotations"]["a"] == "b"
    assert pod["spec"]["nodeSelector"] == {"gpu": "a100"}


def test_restart_policy_mapping() -> None:
    roles = {
        "chief": replica(1, "Always"),
        "worker": replica(1, "ExitCode"),
        "evaluator": replica(1, "Never"),
    }
    _, created = first_plan(make_job(roles=roles, runPolicy={"retryableExitCodes": [137]}))
    assert created["Pod/mnist-chief-0"]["spec"]["restartPolicy"] == "Always"
    assert created["Pod/mnist-worker-0"]["spec"]["restartPolicy"] == "Never"
    assert created["Pod/mnist-evaluator-0"]["spec"]["restartPolicy"] == "Never"
    _, created = first_plan(make_job(workers=1))
    assert created["Pod/mnist-worker-0"]["spec"]["restartPolicy"] == "OnFailure"


def test_gpus_become_limits_and_requests_of_the_first_container() -> None:
    role = replica(1, gpus=4)
    role["template"]["spec"]["containers"].append(container("sidecar"))
    _, created = first_plan(make_job(roles={"worker": role}))
    main, sidecar = created["Pod/mnist-worker-0"]["spec"]["containers"]
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert main["resources"]["requests"]["nvidia.com/gpu"] == "4"
    assert "resources" not in sidecar


def test_scheduling_policy_sets_scheduler_and_priority() -> None:
    job = make_job(
        runPolicy={"schedulingPolicy": {"schedulerName": "volcano", "priorityClassName": "high"}}
    )
    _, created = first_plan(job)
    spec = created["Pod/mnist-worker-0"]["spec"]
    assert spec["schedulerName"] == "volcano" and spec["priorityClassName"] == "high"
    assert "PodGroup/mnist" not in created


def test_gang_scheduling_creates_pod_group_and_labels_pods() -> None:
    job = make_job(workers=3, runPolicy={"schedulingPolicy": {"minAvailable": 2}})
    _, created = first_plan(job, crd=True)
    group = created["PodGroup/mnist"]
    assert group["apiVersion"] == "scheduling.x-k8s.io/v1alpha1"
    assert group["spec"] == {"minMember": 2}
    pod = created["Pod/mnist-worker-0"]
    assert pod["metadata"]["labels"]["scheduling.x-k8s.io/pod-group"] == "mnist"
    assert pod["spec"]["schedulerName"] == children.GANG_SCHEDULER_NAME


def test_gang_min_member_defaults_to_all_replicas_or_elastic_minimum() -> None:
    roles = {"chief": replica(1), "worker": replica(3)}
    job = parse_training_job(make_job(roles=roles, runPolicy={"schedulingPolicy": {"queue": "q"}}))
    assert children.min_member(job) == 4
    elastic = parse_training_job(
        make_job(
            roles=roles,
            elasticPolicy={"minReplicas": 2, "maxReplicas": 5},
            runPolicy={"schedulingPolicy": {"queue": "q"}},
        )
    )
    assert children.min_member(elastic) == 3


def test_user_scheduler_name_in_template_is_kept_under_gang() -> None:
    role = replica(2)
    role["template"]["spec"]["schedulerName"] = "my-coscheduler"
    job = make_job(roles={"worker": role}, runPolicy={"schedulingPolicy": {"minAvailable": 2}})
    _, created = first_plan(job, crd=True)
    assert created["Pod/mnist-worker-0"]["spec"]["schedulerName"] == "my-coscheduler"


def test_gang_without_crd_waits_with_a_clear_condition() -> None:
    world, created = first_plan(
        make_job(runPolicy={"schedulingPolicy": {"minAvailable": 2}}), crd=False
    )
    assert list(created) == ["Service/mnist"]
    cond = world.condition("Created")
    assert cond is not None and cond["status"] == "True"
    assert cond["reason"] == "PodGroupCRDMissing"
    p = world.plan()
    assert p.requeue_after == 60 and not p.creates and not p.events and p.status is None
    world.crd = True
    p = world.step()
    assert sorted(o["metadata"]["name"] for o in p.creates) == [
        "mnist",
        "mnist-worker-0",
        "mnist-worker-1",
    ]
    assert world.condition("Created")["reason"] == "JobCreated"  # type: ignore[index]


def test_pod_group_is_replaced_when_the_gang_size_changes() -> None:
    world = World(make_job(workers=2, runPolicy={"schedulingPolicy": {"queue": "q"}}), crd=True)
    world.settle()
    world.job["spec"]["replicaSpecs"]["worker"]["replicas"] = 3
    p = world.step()
    assert [(d.kind, d.name) for d in p.deletes if d.kind == "PodGroup"] == [("PodGroup", "mnist")]
    world.settle()
    assert world.pod_groups["mnist"]["spec"]["minMember"] == 3


def test_pod_group_min_resources_sum_the_gang_requests() -> None:
    worker = replica(4, gpus=2)
    worker["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "1500m", "memory": "4Gi"},
        "limits": {"memory": "8Gi", "example.com/fpga": "1"},
    }
    worker["template"]["spec"]["initContainers"] = [
        {"name": "fetch", "image": "x", "resources": {"requests": {"cpu": "4", "memory": "1Gi"}}}
    ]
    ps = replica(1)
    ps["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "0.5"}}
    job = make_job(
        roles={"ps": ps, "worker": worker}, runPolicy={"schedulingPolicy": {"minAvailable": 3}}
    )
    _, created = first_plan(job, crd=True)
    # ps-0 (0.5 cpu) + two workers, each max(init 4 cpu, app 1.5 cpu) = 8.5 cpu.
    assert created["PodGroup/mnist"]["spec"] == {
        "minMember": 3,
        "minResources": {
            "cpu": "8500m",
            "example.com/fpga": "2",
            "memory": str(2 * 4 * 2**30),
            "nvidia.com/gpu": "4",
        },
    }


def test_gang_counts_take_min_available_in_role_order() -> None:
    roles = {"chief": replica(1), "ps": replica(2), "worker": replica(4), "evaluator": replica(1)}
    job = parse_training_job(
        make_job(roles=roles, runPolicy={"schedulingPolicy": {"minAvailable": 5}})
    )
    assert children.gang_counts(job) == {"chief": 1, "ps": 2, "worker": 2}


def test_a_pod_group_someone_else_owns_is_never_replaced_or_deleted() -> None:
    world = World(
        make_job(workers=2, runPolicy={"schedulingPolicy": {"minAvailable": 2}}), crd=True
    )
    world.pod_groups["mnist"] = {
        "metadata": {"name": "mnist", "uid": "theirs", "ownerReferences": []},
        "spec": {"minMember": 9},
    }
    p = world.step()
    assert not [o for o in p.creates if o["kind"] == "PodGroup"]
    assert not p.deletes
    world.job["spec"]["runPolicy"] = {}
    assert not world.step().deletes


def test_pods_run_as_non_root_by_default_and_a_template_may_opt_out() -> None:
    _, created = first_plan(make_job(roles={"worker": replica(1)}))
    pod = created["Pod/mnist-worker-0"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (main,) = pod["spec"]["containers"]
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    root = replica(1)
    root["template"]["spec"]["securityContext"] = {"runAsUser": 0}
    _, created = first_plan(make_job(roles={"worker": root}))
    assert "runAsNonRoot" not in created["Pod/mnist-worker-0"]["spec"]["securityContext"]
