"""Environment wiring: torchrun/torch.distributed for DDP jobs, TF_CONFIG for ps jobs."""

from __future__ import annotations

import json

from planner_world import World, make_job, replica


def envs(job: dict) -> dict[str, dict]:
    world = World(job)
    world.step()
    world.step()  # an elastic job's other workers follow its placed rendezvous host
    return {name: world.env(name) for name in world.pod_names()}


def test_ddp_workers_get_torchrun_and_torch_distributed_variables() -> None:
    env = envs(make_job(workers=3))
    w1 = env["mnist-worker-1"]
    assert w1["PYTHONUNBUFFERED"] == "1"
    assert w1["PET_NNODES"] == "3"
    assert w1["PET_NPROC_PER_NODE"] == "1"
    assert w1["PET_NODE_RANK"] == "1"
    assert w1["PET_RDZV_BACKEND"] == "c10d"
    assert w1["PET_RDZV_ENDPOINT"] == "mnist-worker-0.mnist:29400"
    assert w1["PET_RDZV_ID"] == "job-uid-1"
    assert w1["PET_MAX_RESTARTS"] == "0"
    assert w1["MASTER_ADDR"] == "mnist-worker-0.mnist"
    assert w1["MASTER_PORT"] == "23456"
    assert w1["WORLD_SIZE"] == "3"
    assert w1["RANK"] == "1"
    assert w1["ELASTRAIN_ROLE"] == "worker" and w1["ELASTRAIN_INDEX"] == "1"
    assert w1["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert w1["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "TF_CONFIG" not in w1


def test_nproc_auto_uses_gpus_and_world_size_multiplies() -> None:
    env = envs(make_job(roles={"worker": replica(2, gpus=8)}))
    assert env["mnist-worker-0"]["PET_NPROC_PER_NODE"] == "8"
    assert env["mnist-worker-0"]["WORLD_SIZE"] == "16"
    env = envs(make_job(roles={"worker": replica(2, gpus=8)}, nprocPerNode=2))
    assert env["mnist-worker-1"]["PET_NPROC_PER_NODE"] == "2"
    assert env["mnist-worker-1"]["WORLD_SIZE"] == "4"


def test_chief_is_rank_zero_and_master() -> None:
    env = envs(make_job(roles={"chief": replica(1), "worker": replica(2)}))
    assert env["mnist-chief-0"]["PET_NODE_RANK"] == "0"
    assert env["mnist-worker-0"]["PET_NODE_RANK"] == "1"
    assert env["mnist-worker-1"]["RANK"] == "2"
    assert env["mnist-worker-1"]["PET_NNODES"] == "3"
    assert env["mnist-worker-1"]["MASTER_ADDR"] == "mnist-chief-0.mnist"
    assert env["mnist-worker-1"]["PET_RDZV_ENDPOINT"] == "mnist-chief-0.mnist:29400"


def test_elastic_uses_min_max_nnodes_and_leaves_world_size_to_torchrun() -> None:
    job = make_job(workers=3, elasticPolicy={"minReplicas": 2, "maxReplicas": 6, "maxRestarts": 5})
    w = envs(job)["mnist-worker-2"]
    assert w["PET_NNODES"] == "2:6"
    assert w["PET_MAX_RESTARTS"] == "5"
    assert w["PET_RDZV_CONF"] == "last_call_timeout=5"
    assert "WORLD_SIZE" not in w and "RANK" not in w
    policy = {"minReplicas": 2, "maxReplicas": 6, "lastCallTimeoutSeconds": 0}
    assert envs(make_job(workers=3, elasticPolicy=policy))["mnist-worker-0"]["PET_RDZV_CONF"] == (
        "last_call_timeout=0"
    )
    assert "PET_RDZV_CONF" not in envs(make_job(workers=2))["mnist-worker-0"]


def test_evaluator_in_ddp_job_only_learns_the_master() -> None:
    env = envs(make_job(roles={"worker": replica(2), "evaluator": replica(1)}))
    ev = env["mnist-evaluator-0"]
    assert ev["MASTER_ADDR"] == "mnist-worker-0.mnist"
    assert not any(k.startswith("PET_") for k in ev) and "WORLD_SIZE" not in ev


def test_user_set_variables_win() -> None:
    role = replica(1)
    role["template"]["spec"]["containers"][0]["env"] = [
        {"name": "MASTER_PORT", "value": "9999"},
        {"name": "PYTHONUNBUFFERED", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}},
    ]
    world = World(make_job(roles={"worker": role}))
    world.step()
    entries = world.pods["mnist-worker-0"]["spec"]["containers"][0]["env"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names))
    env = world.env("mnist-worker-0")
    assert env["MASTER_PORT"] == "9999"
    assert env["PYTHONUNBUFFERED"] == {"configMapKeyRef": {"name": "x", "key": "y"}}


def test_every_container_and_init_container_is_wired() -> None:
    role = replica(1)
    spec = role["template"]["spec"]
    spec["containers"].append({"name": "side", "image": "x"})
    spec["initContainers"] = [{"name": "init", "image": "x"}]
    world = World(make_job(roles={"worker": role}))
    world.step()
    pod = world.pods["mnist-worker-0"]["spec"]
    for ctr in pod["containers"] + pod["initContainers"]:
        assert {"name": "MASTER_ADDR", "value": "mnist-worker-0.mnist"} in ctr["env"]


def test_ps_jobs_get_tf_config_in_tfjob_format() -> None:
    roles = {"chief": replica(1), "ps": replica(2), "worker": replica(2), "evaluator": replica(1)}
    env = envs(make_job(roles=roles))
    w1 = env["mnist-worker-1"]
    assert w1["TF_CONFIG"] == (
        '{"cluster":{"chief":["mnist-chief-0.mnist.team-a.svc:2222"],'
        '"ps":["mnist-ps-0.mnist.team-a.svc:2222","mnist-ps-1.mnist.team-a.svc:2222"],'
        '"worker":["mnist-worker-0.mnist.team-a.svc:2222","mnist-worker-1.mnist.team-a.svc:2222"]},'
        '"task":{"type":"worker","index":1},"environment":"cloud"}'
    )
    ps1 = json.loads(env["mnist-ps-1"]["TF_CONFIG"])
    assert ps1["task"] == {"type": "ps", "index": 1}
    ev = json.loads(env["mnist-evaluator-0"]["TF_CONFIG"])
    assert ev["task"] == {"type": "evaluator", "index": 0}
    assert "evaluator" not in ev["cluster"]  # TF refuses an evaluator inside the cluster
    cluster = json.loads(w1["ELASTRAIN_CLUSTER"])
    assert cluster["evaluator"] == ["mnist-evaluator-0.mnist.team-a.svc:2222"]
    assert cluster["ps"][1] == "mnist-ps-1.mnist.team-a.svc:2222"
    assert w1["ELASTRAIN_ROLE"] == "worker" and w1["ELASTRAIN_INDEX"] == "1"
    assert "PET_NNODES" not in w1 and "WORLD_SIZE" not in w1


def test_wiring_hash_is_stable_across_releases() -> None:
    """Pods whose hash differs are recreated: changing the hash format restarts every running
    non-elastic job on an operator upgrade. Change these values only on purpose."""
    from elastrain.api.parse import parse_training_job
    from elastrain.planner import env

    ddp = parse_training_job(make_job(workers=3))
    ps = parse_training_job(make_job(roles={"ps": replica(1), "worker": replica(2)}))
    assert env.job_wiring(ddp) == {
        "master": "mnist-worker-0.mnist",
        "nnodes": "3",
        "worldSize": 3,
    }
    assert env.topology(ddp) == "7ab38362f06b9493"
    assert env.topology(ps) == "4ffe2c4cc23ea0f2"


def test_pods_without_a_wiring_hash_are_kept() -> None:
    world = World(make_job(workers=2))
    world.settle()
    world.run()
    for pod in world.pods.values():
        del pod["metadata"]["annotations"]["elastrain.dev/topology"]
    p = world.step()
    assert not p.deletes and world.phase == "Running"
