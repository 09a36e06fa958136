"""Pure builders of the job's children: the headless Service, the PodGroup and the pods.

Like dask-kubernetes' ``build_*_spec``: each returns a complete object (metadata, labels, owner
reference) so the handlers only POST it, and each is a function of the typed job alone, so the
same job always yields byte-identical children and a retried create is a harmless 409.
"""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import Any

from elastrain.api import constants as c
from elastrain.api import quantity
from elastrain.api.kinds import LABEL_POD_GROUP, POD_GROUP
from elastrain.api.types import RestartPolicy, TrainingJob
from elastrain.planner import env, security
from elastrain.planner.observe import ANNOTATION_TOPOLOGY

# The second scheduler that scheduler-plugins' chart installs (and Kubeflow's default gang
# scheduler name). Used only when the user asked for gang scheduling and named no scheduler:
# the default scheduler ignores PodGroups, so gang semantics would silently be lost.
GANG_SCHEDULER_NAME = "scheduler-plugins-scheduler"

# Pod restartPolicy per replica restartPolicy: OnFailure/Always let the kubelet restart
# containers in place (fast, keeps the pod and its node); ExitCode and Never need the pod to
# end Failed so the planner can decide on the exit code.
_POD_RESTART_POLICY = {
    RestartPolicy.ON_FAILURE: "OnFailure",
    RestartPolicy.ALWAYS: "Always",
    RestartPolicy.EXIT_CODE: "Never",
    RestartPolicy.NEVER: "Never",
}

# Service port names (IANA-style, <= 15 characters).
_PORTS = (
    ("rdzv", None),
    ("master", c.DEFAULT_MASTER_PORT),
    ("tf", c.DEFAULT_PS_PORT),
)


def pod_name(job: TrainingJob, role: str, index: int) -> str:
    """``<job>-<role>-<index>``: deterministic, so a retried create collides instead of doubling."""
    return f"{job.name}-{role}-{index}"


def owner_reference(job: TrainingJob) -> dict[str, Any]:
    """Controller reference to the job: garbage collection and our ownership test both use it."""
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "name": job.name,
        "uid": job.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def job_labels(job: TrainingJob) -> dict[str, str]:
    """Labels every child carries."""
    return {c.LABEL_JOB_NAME: job.name, c.LABEL_MANAGED_BY: c.MANAGED_BY}


def worker_selector(job: TrainingJob) -> str:
    """Label selector of the worker pods, as ``status.selector`` for the scale subresource."""
    return f"{c.LABEL_JOB_NAME}={job.name},{c.LABEL_REPLICA_TYPE}={c.ROLE_WORKER}"


def gang_requested(job: TrainingJob) -> bool:
    """Gang scheduling is asked for by ``schedulingPolicy.minAvailable`` or ``queue``."""
    policy = job.spec.run_policy.scheduling_policy
    return policy is not None and (policy.min_available is not None or policy.queue is not None)


def gang_counts(job: TrainingJob) -> dict[str, int]:
    """How many replicas of each role the gang needs at once.

    Every replica by default, except that an elastic job's gang holds only ``minReplicas``
    workers: it must be able to start at its minimum, never demanding the workers it could
    live without (DLRover #1175). ``minAvailable`` takes that many replicas in role order
    (chief, ps, worker, evaluator: the evaluator is the one a job can best start without).
    """
    wanted: dict[str, int] = {}
    for role in c.ROLES:
        count = env.replicas(job, role)
        if role == c.ROLE_WORKER and job.spec.elastic_policy is not None:
            count = min(count, job.spec.elastic_policy.min_replicas)
        if count:
            wanted[role] = count
    policy = job.spec.run_policy.scheduling_policy
    if policy is None or policy.min_available is None:
        return wanted
    left = policy.min_available
    counts: dict[str, int] = {}
    for role in c.ROLES:
        take = min(env.replicas(job, role), left)
        if take:
            counts[role] = take
            left -= take
    return counts


def min_member(job: TrainingJob) -> int:
    """The gang size (see ``gang_counts``)."""
    return sum(gang_counts(job).values())


def pod_requests(job: TrainingJob, role: str) -> dict[str, Fraction]:
    """What one pod of ``role`` requests, as the scheduler counts it (``api.quantity``'s rule,
    the same one the sandbox's scheduler uses), with the role's GPUs on its first container."""
    spec = job.spec.replica_specs[role]
    pod_spec = spec.template.get("spec") or {}
    containers = [ctr for ctr in pod_spec.get("containers") or [] if isinstance(ctr, dict)]
    if spec.gpus and containers:
        containers[0] = _with_gpus(containers[0], spec.gpus)
    return quantity.pod_requests({**pod_spec, "containers": containers})


def min_resources(job: TrainingJob) -> dict[str, str]:
    """The resources the whole gang requests (``PodGroup.spec.minResources``).

    Like Kubeflow's default: with it, the coscheduling plugin turns a gang away at once when
    the cluster cannot hold it, instead of binding part of it and holding those GPUs.
    """
    total: dict[str, Fraction] = {}
    for role, count in gang_counts(job).items():
        for name, value in pod_requests(job, role).items():
            total[name] = total.get(name, Fraction(0)) + value * count
    return {name: quantity.fmt(value) for name, value in sorted(total.items())}


def _meta(job: TrainingJob, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": job.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(job)],
    }


def build_service_spec(job: TrainingJob) -> dict[str, Any]:
    """The job's one headless Service ``<job>``.

    ``publishNotReadyAddresses`` makes ``<job>-<role>-<i>.<job>`` resolve as soon as a pod has an
    IP, not once it is Ready: peers must find the rendezvous host while it is still starting,
    which is what removes any need for start ordering or wait-for-master init containers.
    """
    rdzv = job.spec.elastic_policy.rdzv_port if job.spec.elastic_policy else c.DEFAULT_RDZV_PORT
    ports = [
        {"name": name, "port": port or rdzv, "targetPort": port or rdzv, "protocol": "TCP"}
        for name, port in _PORTS
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(job, job.name, job_labels(job)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {c.LABEL_JOB_NAME: job.name},
            "ports": ports,
        },
    }


def build_pod_group_spec(job: TrainingJob) -> dict[str, Any]:
    """The scheduler-plugins PodGroup ``<job>`` that gangs the job's pods."""
    return {
        "apiVersion": POD_GROUP.api_version,
        "kind": POD_GROUP.kind,
        "metadata": _meta(job, job.name, job_labels(job)),
        "spec": _pod_group_spec(job),
    }


def _pod_group_spec(job: TrainingJob) -> dict[str, Any]:
    spec: dict[str, Any] = {"minMember": min_member(job)}
    resources = min_resources(job)
    if resources:
        spec["minResources"] = resources
    return spec


def build_pod_spec(job: TrainingJob, role: str, index: int, *, gang: bool) -> dict[str, Any]:
    """Pod ``<job>-<role>-<index>`` from the role's template, wired, labelled and hardened.

    The user's template labels and annotations are kept; ours are added on top (the parser
    refuses templates that set our labels). ``gang`` adds the PodGroup label and, if no
    scheduler is named anywhere, the gang scheduler. Security fields the template leaves unset
    get the restricted profile's values (:mod:`elastrain.planner.security`).
    """
    spec = job.spec.replica_specs[role]
    template = copy.deepcopy(spec.template)
    meta = template.get("metadata") or {}
    pod_spec: dict[str, Any] = template.get("spec") or {}
    name = pod_name(job, role, index)

    labels = dict(meta.get("labels") or {})
    labels.update(job_labels(job))
    labels[c.LABEL_REPLICA_TYPE] = role
    labels[c.LABEL_REPLICA_INDEX] = str(index)
    if gang:
        labels[LABEL_POD_GROUP] = job.name
    annotations = dict(meta.get("annotations") or {})
    # Evicting one rank of a collective stalls every other rank: tell the autoscaler not to.
    annotations[c.ANNOTATION_SAFE_TO_EVICT] = "false"
    annotations[ANNOTATION_TOPOLOGY] = env.topology(job)

    pod_spec["hostname"] = name
    pod_spec["subdomain"] = job.name
    pod_spec["restartPolicy"] = _POD_RESTART_POLICY[spec.restart_policy]
    policy = job.spec.run_policy.scheduling_policy
    if policy is not None and policy.scheduler_name:
        pod_spec["schedulerName"] = policy.scheduler_name
    elif gang and not pod_spec.get("schedulerName"):
        pod_spec["schedulerName"] = GANG_SCHEDULER_NAME
    if policy is not None and policy.priority_class_name:
        pod_spec["priorityClassName"] = policy.priority_class_name

    wiring = env.pod_env(job, role, index)
    containers = [env.inject(ctr, wiring) for ctr in pod_spec.get("containers") or []]
    if spec.gpus and containers:
        containers[0] = _with_gpus(containers[0], spec.gpus)
    pod_spec["containers"] = containers
    if pod_spec.get("initContainers"):
        pod_spec["initContainers"] = [env.inject(ctr, wiring) for ctr in pod_spec["initContainers"]]

    metadata = _meta(job, name, labels)
    metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": security.harden(pod_spec),
    }


def _with_gpus(container: dict[str, Any], gpus: int) -> dict[str, Any]:
    """``gpus`` as both limit and request on the (first, main) container.

    Extended resources must have request == limit; setting both explicitly keeps a template's
    own ``requests`` section from disagreeing.
    """
    resources = dict(container.get("resources") or {})
    for key in ("limits", "requests"):
        resources[key] = {**(resources.get(key) or {}), c.GPU_RESOURCE: str(gpus)}
    return {**container, "resources": resources}
