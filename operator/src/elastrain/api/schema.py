"""The TrainingJob CRD as Python data: the one source of truth for ``crds/`` and the chart.

Everything the API server can enforce lives here (types, ranges, enums, defaults, CEL rules,
immutability), so that a bad spec is refused at ``kubectl apply`` time with a message naming
the field. ``elastrain.api.parse`` checks the same rules again at reconcile time, in the same
words (``elastrain.api.messages``); the tests in ``tests/api`` hold both to the same bad specs,
and hold the enums and defaults here equal to ``elastrain.api.types``.

CEL rules guard every optional field with ``has()``: the API server reports a rule that errors
(``no such key``) as a confusing extra cause, and the schema's own ``required`` already says what
is missing. Rules never loop over unbounded maps or lists, to stay far below the API server's
CEL cost budget.
"""

from __future__ import annotations

from elastrain.api import constants as c
from elastrain.api import messages as m
from elastrain.api.schema_parts import (
    Schema,
    boolean,
    enum,
    integer,
    obj,
    rule,
    string,
)
from elastrain.api.status_schema import status_schema
from elastrain.api.template_schema import pod_template_schema
from elastrain.api.types import (
    DEFAULT_REPLICAS,
    DEFAULT_RESTART_POLICY,
    CleanPodPolicy,
    ElasticPolicy,
    RestartBackoff,
    RestartPolicy,
    RunPolicy,
    SuccessPolicy,
)

_SUSPENDED_BEFORE = (
    "(has(oldSelf.runPolicy) && has(oldSelf.runPolicy.suspend) && oldSelf.runPolicy.suspend)"
)


_WORKER_REPLICAS = f"spec.replicaSpecs.{c.ROLE_WORKER}.replicas"


def _role(role: str) -> str:
    return f"self.replicaSpecs.{role}"


def _replicas_or_zero(role: str) -> str:
    return f"(has({_role(role)}) ? {_role(role)}.replicas : 0)"


def _replica_spec(role: str) -> Schema:
    maximum = 1 if role in c.SINGLETON_ROLES else c.MAX_REPLICAS
    replicas = integer(
        f"Number of {role} pods." + (" At most 1." if maximum == 1 else ""),
        minimum=0,
        maximum=maximum,
        default=DEFAULT_REPLICAS,
    )
    if role in (c.ROLE_PS, c.ROLE_CHIEF):
        # Every pod's TF_CONFIG lists the parameter servers and the chief.
        replicas["x-kubernetes-validations"] = [_immutable(f"spec.replicaSpecs.{role}.replicas")]
    return obj(
        f"The {role} role.",
        {
            "replicas": replicas,
            "restartPolicy": enum(
                "What happens when a pod of this role fails: Never fails the job; OnFailure "
                "restarts the container in place, or recreates a failed pod; ExitCode recreates "
                "the pod only after a retryable exit code (runPolicy.retryableExitCodes); Always "
                "also restarts containers that succeeded. Every restart counts toward "
                "runPolicy.backoffLimit.",
                RestartPolicy,
                DEFAULT_RESTART_POLICY,
            ),
            "gpus": integer(
                f"GPUs per pod ({c.GPU_RESOURCE}); the operator adds the resource limit to the "
                "first container. nprocPerNode 'auto' starts one process per GPU.",
                minimum=0,
                maximum=c.MAX_GPUS_PER_REPLICA,
            ),
            "template": pod_template_schema(role),
        },
        required=["template"],
    )


def _replica_specs() -> Schema:
    optional = [r for r in c.ROLES if r != c.ROLE_WORKER]
    same_roles = " && ".join(f"has(self.{r}) == has(oldSelf.{r})" for r in optional)
    return obj(
        "The job's roles: worker (required), and optionally ps, chief and evaluator.",
        {role: _replica_spec(role) for role in c.ROLES},
        required=[c.ROLE_WORKER],
        rules=[rule(same_roles, m.ROLES_IMMUTABLE, reason="FieldValueForbidden")],
    )


def _immutable(path: str) -> Schema:
    return rule(
        "self == oldSelf",
        m.at(path, m.IMMUTABLE),
        reason="FieldValueForbidden",
    )


def _elastic_policy() -> Schema:
    d = ElasticPolicy(min_replicas=1, max_replicas=1)
    return obj(
        "Elastic workers: torchrun's c10d rendezvous admits between minReplicas and "
        "maxReplicas workers, and worker replicas may change (kubectl scale, HPA) in that range.",
        {
            "minReplicas": integer("Fewest workers that train.", minimum=1, maximum=c.MAX_REPLICAS),
            "maxReplicas": integer("Most workers.", minimum=1, maximum=c.MAX_REPLICAS),
            "rdzvBackend": enum(
                "torchrun rendezvous backend.",
                list(c.RDZV_BACKENDS),
                d.rdzv_backend,
                rules=[_immutable("spec.elasticPolicy.rdzvBackend")],
            ),
            "rdzvPort": integer(
                "Port of the c10d rendezvous store on worker 0.",
                minimum=1,
                maximum=65535,
                default=d.rdzv_port,
                rules=[_immutable("spec.elasticPolicy.rdzvPort")],
            ),
            "maxRestarts": integer(
                "torchrun --max-restarts: restarts of the worker group inside a pod before the "
                "pod fails.",
                minimum=0,
                maximum=c.MAX_BACKOFF_LIMIT,
                default=d.max_restarts,
            ),
            "lastCallTimeoutSeconds": integer(
                "Seconds the c10d rendezvous waits for more workers once minReplicas joined, "
                "on every (re-)rendezvous below maxReplicas (torch's own default: 30).",
                minimum=0,
                maximum=c.MAX_LAST_CALL_TIMEOUT_S,
                default=d.last_call_timeout_seconds,
            ),
            "pendingTimeoutSeconds": integer(
                "Seconds a worker may stay Pending (created, not running: unschedulable, "
                "waiting for a node) before the job reports it with the WorkersPending "
                "condition and a Warning Event. The job keeps running with the workers it has, "
                "and a worker that gets scheduled later joins. Absent: never reported.",
                minimum=1,
                maximum=c.MAX_PENDING_TIMEOUT_S,
            ),
            "trimPendingWorkers": boolean(
                "Past pendingTimeoutSeconds, give the Pending workers up instead of only "
                "reporting them: the job keeps the workers it has (at least minReplicas, never "
                "a lower index than one that runs), deletes the Pending ones above them and "
                "creates no more, until the worker count of the spec changes (kubectl scale, "
                "an HPA, an edit). Shown in the WorkersPending condition and a WorkersTrimmed "
                "Event. Needs pendingTimeoutSeconds.",
                default=d.trim_pending_workers,
            ),
        },
        required=["minReplicas", "maxReplicas"],
        rules=[
            rule(
                "!has(self.minReplicas) || !has(self.maxReplicas) || "
                "self.minReplicas <= self.maxReplicas",
                m.at("spec.elasticPolicy.minReplicas", m.ELASTIC_MIN_ABOVE_MAX),
                field_path=".minReplicas",
            ),
            rule(
                "!has(self.trimPendingWorkers) || !self.trimPendingWorkers || "
                "has(self.pendingTimeoutSeconds)",
                m.at("spec.elasticPolicy.trimPendingWorkers", m.TRIM_NEEDS_PENDING_TIMEOUT),
                field_path=".trimPendingWorkers",
            ),
        ],
    )


def _scheduling_policy() -> Schema:
    def name(desc: str) -> Schema:
        return string(desc, pattern=c.DNS_SUBDOMAIN_PATTERN, max_length=253)

    return obj(
        "Scheduling for every pod of the job.",
        {
            "schedulerName": name("Scheduler for the pods (pod.spec.schedulerName)."),
            "priorityClassName": name("PriorityClass for the pods."),
            "queue": name(
                "Queue name. For now it only turns on gang scheduling, like minAvailable: no "
                "scheduler receives the name yet."
            ),
            "minAvailable": integer(
                "Gang size: pods that must be schedulable together (a PodGroup's minMember).",
                minimum=1,
            ),
        },
    )


def _run_policy() -> Schema:
    d = RunPolicy()
    backoff = RestartBackoff()
    seconds = c.MAX_BACKOFF_SECONDS
    return obj(
        "Job-wide limits and lifecycle.",
        {
            "backoffLimit": integer(
                "Pod restarts (all roles together) before the job fails.",
                minimum=0,
                maximum=c.MAX_BACKOFF_LIMIT,
                default=d.backoff_limit,
            ),
            "activeDeadlineSeconds": integer(
                "Seconds after startTime before a running job is failed.",
                minimum=1,
                fmt="int64",
            ),
            "ttlSecondsAfterFinished": integer(
                "Seconds after completion before the finished job is deleted.",
                minimum=0,
                fmt="int32",
            ),
            "cleanPodPolicy": enum(
                "Which pods are deleted when the job finishes.", CleanPodPolicy, d.clean_pod_policy
            ),
            "suspend": boolean(
                "Delete the job's pods and keep the job; false resumes it.", default=d.suspend
            ),
            "schedulingPolicy": _scheduling_policy(),
            "retryableExitCodes": {
                "type": "array",
                "description": "Exit codes after which an ExitCode-policy pod is recreated; "
                "absent means every code >= 128 (signals: OOM kill 137, SIGTERM 143).",
                "minItems": 1,
                "maxItems": 255,
                "items": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 255},
                "x-kubernetes-list-type": "set",
            },
            "restartBackoff": obj(
                "Delay before a failed pod is recreated: initialSeconds * 2^n, capped.",
                {
                    "initialSeconds": integer(
                        "First delay; 0 recreates at once.",
                        minimum=0,
                        maximum=seconds,
                        default=backoff.initial_seconds,
                    ),
                    "maxSeconds": integer(
                        "Largest delay.", minimum=0, maximum=seconds, default=backoff.max_seconds
                    ),
                },
                # The whole default, not {}: kube-apiserver checks a default against the CEL
                # rules as written, without first filling in the defaults nested inside it.
                default={
                    "initialSeconds": backoff.initial_seconds,
                    "maxSeconds": backoff.max_seconds,
                },
                rules=[
                    rule(
                        "self.initialSeconds <= self.maxSeconds",
                        m.at(
                            "spec.runPolicy.restartBackoff.initialSeconds",
                            m.BACKOFF_INITIAL_ABOVE_MAX,
                        ),
                        field_path=".initialSeconds",
                    )
                ],
            ),
        },
        default={},
        rules=[
            rule(
                "(has(oldSelf.suspend) && oldSelf.suspend) || "
                "(has(self.schedulingPolicy) == has(oldSelf.schedulingPolicy) && "
                "(!has(self.schedulingPolicy) || "
                "self.schedulingPolicy == oldSelf.schedulingPolicy))",
                m.at("spec.runPolicy.schedulingPolicy", m.ONLY_WHILE_SUSPENDED),
                field_path=".schedulingPolicy",
                reason="FieldValueForbidden",
            )
        ],
    )


def _spec_rules() -> list[Schema]:
    worker = _role(c.ROLE_WORKER)
    has_worker = f"has({worker})"
    total = " + ".join(_replicas_or_zero(r) for r in c.ROLES)
    exit_code_roles = " || ".join(
        f"(has({_role(r)}) && {_role(r)}.restartPolicy == '{RestartPolicy.EXIT_CODE}')"
        for r in c.ROLES
    )
    min_available = "self.runPolicy.schedulingPolicy.minAvailable"
    rules = [
        rule(
            f"!has(self.elasticPolicy) || !{has_worker} || "
            "!has(self.elasticPolicy.minReplicas) || !has(self.elasticPolicy.maxReplicas) || "
            f"({worker}.replicas >= self.elasticPolicy.minReplicas && "
            f"{worker}.replicas <= self.elasticPolicy.maxReplicas)",
            m.at(_WORKER_REPLICAS, m.WORKERS_OUTSIDE_ELASTIC_RANGE),
            field_path=".replicaSpecs.worker.replicas",
        ),
        rule(
            f"self.successPolicy != '{SuccessPolicy.ALL_WORKERS}' || !{has_worker} || "
            f"{worker}.replicas >= 1",
            m.at(_WORKER_REPLICAS, m.NO_WORKERS_WITH_ALL_WORKERS),
            field_path=".replicaSpecs.worker.replicas",
        ),
        rule(
            f"self.successPolicy != '{SuccessPolicy.CHIEF}' || "
            f"{_replicas_or_zero(c.ROLE_CHIEF)} >= 1 || {_replicas_or_zero(c.ROLE_WORKER)} >= 1",
            m.at("spec.successPolicy", m.CHIEF_WITHOUT_PODS),
            field_path=".successPolicy",
        ),
        rule(
            f"{_replicas_or_zero(c.ROLE_PS)} == 0 || {_replicas_or_zero(c.ROLE_WORKER)} >= 1",
            m.at(_WORKER_REPLICAS, m.NO_WORKERS_WITH_PS),
            field_path=".replicaSpecs.worker.replicas",
        ),
        rule(
            f"!has(self.elasticPolicy) || {_replicas_or_zero(c.ROLE_PS)} == 0",
            m.at("spec.elasticPolicy", m.ELASTIC_WITH_PS),
            field_path=".elasticPolicy",
        ),
        rule(
            f"!has(self.runPolicy) || !has(self.runPolicy.retryableExitCodes) || {exit_code_roles}",
            m.at("spec.runPolicy.retryableExitCodes", m.EXIT_CODES_WITHOUT_EXIT_CODE_ROLE),
            field_path=".runPolicy.retryableExitCodes",
        ),
        rule(
            "!has(self.runPolicy) || !has(self.runPolicy.schedulingPolicy) || "
            f"!has({min_available}) || {min_available} <= {total}",
            m.at("spec.runPolicy.schedulingPolicy.minAvailable", m.MIN_AVAILABLE_ABOVE_TOTAL),
            field_path=".runPolicy.schedulingPolicy.minAvailable",
        ),
        rule(
            "has(self.elasticPolicy) == has(oldSelf.elasticPolicy)",
            m.at("spec.elasticPolicy", m.ADDED_OR_REMOVED),
            field_path=".elasticPolicy",
            reason="FieldValueForbidden",
        ),
        rule(
            "self.successPolicy == oldSelf.successPolicy",
            m.at("spec.successPolicy", m.IMMUTABLE),
            field_path=".successPolicy",
            reason="FieldValueForbidden",
        ),
        rule(
            # Plain (heterogeneous) equality: 2 == "auto" is false. A type() comparison of
            # the int-or-string values is costed as unbounded by kube-apiserver, which then
            # refuses the whole CRD (found by tests/realcluster).
            f"{_SUSPENDED_BEFORE} || self.nprocPerNode == oldSelf.nprocPerNode",
            m.at("spec.nprocPerNode", m.ONLY_WHILE_SUSPENDED),
            field_path=".nprocPerNode",
            reason="FieldValueForbidden",
        ),
    ]
    for role in c.ROLES:
        new, old = _role(role), f"oldSelf.replicaSpecs.{role}"
        both = f"!has({new}) || !has({old}) || {_SUSPENDED_BEFORE}"
        rules.append(
            rule(
                f"{both} || {new}.template == {old}.template",
                m.at(f"spec.replicaSpecs.{role}.template", m.ONLY_WHILE_SUSPENDED),
                field_path=f".replicaSpecs.{role}.template",
                reason="FieldValueForbidden",
            )
        )
        rules.append(
            rule(
                f"{both} || (has({new}.gpus) == has({old}.gpus) && "
                f"(!has({new}.gpus) || {new}.gpus == {old}.gpus))",
                m.at(f"spec.replicaSpecs.{role}.gpus", m.ONLY_WHILE_SUSPENDED),
                field_path=f".replicaSpecs.{role}.gpus",
                reason="FieldValueForbidden",
            )
        )
    return rules


def spec_schema() -> Schema:
    """``spec`` of a TrainingJob."""
    return obj(
        "The desired training job.",
        {
            "replicaSpecs": _replica_specs(),
            "elasticPolicy": _elastic_policy(),
            "nprocPerNode": {
                "description": "Processes per pod (torchrun --nproc-per-node): an integer >= 1, "
                'or "auto" for the pod\'s GPU count (gpus), else 1.',
                "x-kubernetes-int-or-string": True,
                "default": c.NPROC_AUTO,
                "x-kubernetes-validations": [
                    rule(
                        f"type(self) == int ? self >= 1 : self == '{c.NPROC_AUTO}'",
                        m.at("spec.nprocPerNode", m.NPROC_PER_NODE),
                    )
                ],
            },
            "runPolicy": _run_policy(),
            "successPolicy": enum(
                "When the job succeeds: AllWorkers when every worker has succeeded; Chief when "
                "the chief (or, without a chief, worker 0) has succeeded.",
                SuccessPolicy,
                SuccessPolicy.ALL_WORKERS,
            ),
        },
        required=["replicaSpecs"],
        rules=_spec_rules(),
    )


def _root_rules() -> list[Schema]:
    limit = c.MAX_JOB_NAME_LENGTH
    return [
        rule(
            f"self.metadata.name.size() <= {limit}",
            m.at("metadata.name", m.JOB_NAME_TOO_LONG),
        ),
        rule(
            f"self.metadata.name.matches('{c.JOB_NAME_PATTERN}')",
            m.at("metadata.name", m.JOB_NAME_NOT_DNS_1035),
        ),
    ]


def openapi_schema() -> Schema:
    """The version's ``openAPIV3Schema``."""
    return {
        "type": "object",
        "description": "A distributed (optionally elastic) PyTorch training job.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "elastrain.dev/v1alpha1"},
            "kind": {"type": "string", "description": "TrainingJob"},
            # metadata is not declared: the API server always handles ObjectMeta itself (and
            # CEL sees metadata.name regardless), so declaring it would add nothing.
            "spec": spec_schema(),
            "status": status_schema(),
        },
        "x-kubernetes-validations": _root_rules(),
    }


def _printer_columns() -> list[Schema]:
    def col(name: str, kind: str, path: str, desc: str, priority: int = 0) -> Schema:
        out: Schema = {"name": name, "type": kind, "jsonPath": path, "description": desc}
        if priority:
            out["priority"] = priority
        return out

    return [
        col("Phase", "string", ".status.phase", "Current phase of the job."),
        col("Ready", "integer", ".status.replicaStatuses.worker.ready", "Ready workers."),
        col("Workers", "integer", ".spec.replicaSpecs.worker.replicas", "Desired workers."),
        col("Restarts", "integer", ".status.restartCount", "Pod restarts so far."),
        col("Progress%", "integer", ".status.progress.percent", "Steps done, in percent."),
        col("Loss", "number", ".status.progress.loss", "Loss of the latest step."),
        col("ETA", "string", ".status.progress.eta", "Time left at the current step rate."),
        col("Step", "integer", ".status.progress.step", "Global step reached.", 1),
        col("Min", "integer", ".spec.elasticPolicy.minReplicas", "Elastic minimum.", 1),
        col("Max", "integer", ".spec.elasticPolicy.maxReplicas", "Elastic maximum.", 1),
        col("Age", "date", ".metadata.creationTimestamp", "Time since creation."),
    ]


def crd() -> Schema:
    """The whole CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": c.CRD_NAME,
            "labels": {
                "app.kubernetes.io/name": "elastrain",
                "app.kubernetes.io/part-of": "elastrain",
            },
        },
        "spec": {
            "group": c.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": c.KIND,
                "listKind": f"{c.KIND}List",
                "plural": c.PLURAL,
                "singular": c.SINGULAR,
                "shortNames": list(c.SHORT_NAMES),
            },
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicaSpecs.worker.replicas",
                            "statusReplicasPath": ".status.replicaStatuses.worker.active",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": _printer_columns(),
                }
            ],
        },
    }
