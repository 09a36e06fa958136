"""Environment wiring: how each replica finds its peers and learns its place in the job.

Two families, chosen by the job's shape:

* **DDP jobs** (no ``ps`` role): torchrun's ``PET_*`` variables (torchrun reads ``PET_<FLAG>``
  as the default of ``--<flag>``) plus plain ``torch.distributed`` ``MASTER_ADDR``/``RANK``/...
  for scripts launched without torchrun. Rank 0 is the chief when there is one (Kubeflow's
  master), else worker 0; the rendezvous endpoint and ``MASTER_ADDR`` are that pod.
* **Parameter-server jobs** (a ``ps`` role): ``TF_CONFIG`` exactly as Kubeflow's TFJob writes it,
  plus ``ELASTRAIN_CLUSTER`` (the same addresses as JSON, evaluator included) for our trainer.

Every container gets the variables unless the user already set one of that name (value or
valueFrom): a user override always wins. ``topology`` hashes the job-wide part of the wiring so
the planner can tell which running pods carry a stale environment after a scale.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from elastrain.api import constants as c
from elastrain.api.types import TrainingJob

# Roles that take part in a DDP job's process group; the evaluator only learns where the
# master is (it evaluates checkpoints, it does not join the collective).
_DDP_WORLD_ROLES = (c.ROLE_CHIEF, c.ROLE_WORKER)


def is_ps_job(job: TrainingJob) -> bool:
    """A parameter-server (TF-style) job rather than a DDP one."""
    spec = job.spec.replica_specs.get(c.ROLE_PS)
    return spec is not None and spec.replicas > 0


def replicas(job: TrainingJob, role: str) -> int:
    """Desired replicas of ``role`` (0 when the role is absent)."""
    spec = job.spec.replica_specs.get(role)
    return spec.replicas if spec is not None else 0


def gpu_count(job: TrainingJob, role: str) -> int:
    """GPUs of one replica: ``gpus`` if set, else the template's ``nvidia.com/gpu`` limits."""
    spec = job.spec.replica_specs.get(role)
    if spec is None:
        return 0
    if spec.gpus is not None:
        return spec.gpus
    total = 0
    for container in (spec.template.get("spec") or {}).get("containers") or []:
        limits = ((container or {}).get("resources") or {}).get("limits") or {}
        try:
            total += int(str(limits.get(c.GPU_RESOURCE, 0)))
        except ValueError:
            continue
    return total


def nproc(job: TrainingJob, role: str) -> int:
    """Processes per pod: ``nprocPerNode``, where ``auto`` is the GPU count (at least 1)."""
    value = job.spec.nproc_per_node
    if isinstance(value, int):
        return value
    return max(gpu_count(job, role), 1)


def host(job: TrainingJob, role: str, index: int) -> str:
    """The pod's DNS name through the job's headless Service (search path adds the namespace)."""
    return f"{job.name}-{role}-{index}.{job.name}"


def master_host(job: TrainingJob) -> str:
    """The rank-0 pod: the chief if the job has one, else worker 0."""
    role = c.ROLE_CHIEF if replicas(job, c.ROLE_CHIEF) > 0 else c.ROLE_WORKER
    return host(job, role, 0)


def node_rank(job: TrainingJob, role: str, index: int) -> int:
    """Chief is node 0, then the workers in index order."""
    if role == c.ROLE_CHIEF:
        return index
    return replicas(job, c.ROLE_CHIEF) + index


def _nnodes(job: TrainingJob) -> str:
    chiefs = replicas(job, c.ROLE_CHIEF)
    elastic = job.spec.elastic_policy
    if elastic is not None:
        return f"{elastic.min_replicas + chiefs}:{elastic.max_replicas + chiefs}"
    return str(chiefs + replicas(job, c.ROLE_WORKER))


def _world_size(job: TrainingJob) -> int:
    return sum(replicas(job, role) * nproc(job, role) for role in _DDP_WORLD_ROLES)


def cluster(job: TrainingJob, *, with_evaluator: bool) -> dict[str, list[str]]:
    """Role -> ``host:2222`` addresses (fully qualified, as TFJob writes them)."""
    out: dict[str, list[str]] = {}
    for role in sorted(job.spec.replica_specs):
        if role == c.ROLE_EVALUATOR and not with_evaluator:
            continue
        count = replicas(job, role)
        if count > 0:
            out[role] = [
                f"{host(job, role, i)}.{job.namespace}.svc:{c.DEFAULT_PS_PORT}"
                for i in range(count)
            ]
    return out


def job_wiring(job: TrainingJob) -> dict[str, Any]:
    """The job-wide values every pod's environment is derived from.

    Elastic DDP jobs leave the worker count out on purpose (``PET_NNODES`` is ``min:max`` and
    c10d re-rendezvous absorbs a scale), so scaling them does not make running pods stale.
    """
    if is_ps_job(job):
        return {"cluster": cluster(job, with_evaluator=True)}
    wiring: dict[str, Any] = {"master": master_host(job), "nnodes": _nnodes(job)}
    if job.spec.elastic_policy is None:
        wiring["worldSize"] = _world_size(job)
    return wiring


def topology(job: TrainingJob) -> str:
    """A short stable hash of ``job_wiring``: equal hashes mean an equally wired pod."""
    text = json.dumps(job_wiring(job), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pod_env(job: TrainingJob, role: str, index: int) -> list[dict[str, Any]]:
    """Every variable the operator injects into the containers of pod ``role``-``index``."""
    env: list[dict[str, Any]] = [
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        _field("POD_NAME", "metadata.name"),
        _field("POD_NAMESPACE", "metadata.namespace"),
        _field("POD_IP", "status.podIP"),
        {"name": "ELASTRAIN_ROLE", "value": role},
        {"name": "ELASTRAIN_INDEX", "value": str(index)},
    ]
    values = _ps_values(job, role, index) if is_ps_job(job) else _ddp_values(job, role, index)
    env.extend({"name": k, "value": v} for k, v in values.items())
    return env


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _ddp_values(job: TrainingJob, role: str, index: int) -> dict[str, str]:
    values = {"MASTER_ADDR": master_host(job), "MASTER_PORT": str(c.DEFAULT_MASTER_PORT)}
    if role not in _DDP_WORLD_ROLES:
        return values
    elastic = job.spec.elastic_policy
    rank = node_rank(job, role, index)
    values.update(
        {
            "PET_NNODES": _nnodes(job),
            "PET_NPROC_PER_NODE": str(nproc(job, role)),
            "PET_NODE_RANK": str(rank),
            "PET_RDZV_BACKEND": elastic.rdzv_backend if elastic else c.RDZV_BACKENDS[0],
            "PET_RDZV_ENDPOINT": f"{master_host(job)}:"
            f"{elastic.rdzv_port if elastic else c.DEFAULT_RDZV_PORT}",
            "PET_RDZV_ID": job.uid,
            # Non-elastic jobs leave restarts to the kubelet, where backoffLimit counts them.
            "PET_MAX_RESTARTS": str(elastic.max_restarts if elastic else 0),
        }
    )
    if elastic is not None:
        # A user's own PET_RDZV_CONF in the container wins (``inject`` skips taken names).
        values["PET_RDZV_CONF"] = f"last_call_timeout={elastic.last_call_timeout_seconds}"
    else:
        # Elastic jobs get these from torchrun per rendezvous round; a pod-level value would
        # go stale on the first scale.
        values["WORLD_SIZE"] = str(_world_size(job))
        values["RANK"] = str(rank)
    return values


def _ps_values(job: TrainingJob, role: str, index: int) -> dict[str, str]:
    tf_config = {
        "cluster": cluster(job, with_evaluator=False),
        "task": {"type": role, "index": index},
        "environment": "cloud",
    }
    return {
        "TF_CONFIG": json.dumps(tf_config, separators=(",", ":")),
        "ELASTRAIN_CLUSTER": json.dumps(
            cluster(job, with_evaluator=True), sort_keys=True, separators=(",", ":")
        ),
    }


def inject(container: dict[str, Any], env: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy of ``container`` with ``env`` appended, skipping names the user already set."""
    existing = [e for e in container.get("env") or [] if isinstance(e, dict)]
    taken = {e.get("name") for e in existing}
    return {**container, "env": existing + [e for e in env if e["name"] not in taken]}
