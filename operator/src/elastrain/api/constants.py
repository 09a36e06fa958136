"""Names that the API, the planner, the handlers and the trainer's wiring all agree on.

Kept in one module so that a label key or a port is never spelled twice.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "elastrain.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "TrainingJob"
PLURAL: Final = "trainingjobs"
SINGULAR: Final = "trainingjob"
SHORT_NAMES: Final = ("tj",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# Child labels (deterministic, used for selectors and by users).
LABEL_JOB_NAME: Final = "elastrain.dev/job-name"
LABEL_REPLICA_TYPE: Final = "elastrain.dev/replica-type"
LABEL_REPLICA_INDEX: Final = "elastrain.dev/replica-index"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "elastrain"

# kopf bookkeeping lives under our own prefix, never in the typed status.
KOPF_PREFIX: Final = "kopf.elastrain.dev"
FINALIZER: Final = "elastrain.dev/finalizer"

ANNOTATION_SAFE_TO_EVICT: Final = "cluster-autoscaler.kubernetes.io/safe-to-evict"

# Roles, in the order pods are created and listed.
ROLE_CHIEF: Final = "chief"
ROLE_PS: Final = "ps"
ROLE_WORKER: Final = "worker"
ROLE_EVALUATOR: Final = "evaluator"
ROLES: Final = (ROLE_CHIEF, ROLE_PS, ROLE_WORKER, ROLE_EVALUATOR)

# Default ports (Kubeflow-compatible where Kubeflow has one).
DEFAULT_MASTER_PORT: Final = 23456
DEFAULT_RDZV_PORT: Final = 29400
DEFAULT_PS_PORT: Final = 2222

GPU_RESOURCE: Final = "nvidia.com/gpu"

# The container port (by name) where a trainer serves its Prometheus metrics; the operator
# reads worker 0's to fill ``status.progress``, and the chart's PodMonitor scrapes it.
METRICS_PORT_NAME: Final = "metrics"
# The non-phase condition a job carries once it has reported progress: True while no training
# step was seen for the operator's ``--stall-after``.
CONDITION_STALLED: Final = "Stalled"
# The non-phase condition of an elastic job with elasticPolicy.pendingTimeoutSeconds: True while
# some of its workers have been Pending (created, not running) for longer than that.
CONDITION_WORKERS_PENDING: Final = "WorkersPending"

# Longest child suffix is "-evaluator-" plus up to 4 index digits; a pod name must be a DNS
# label (<= 63), so the job name is capped at 63 - len("-evaluator-9999") = 48.
MAX_JOB_NAME_LENGTH: Final = 48
MAX_REPLICAS: Final = 9999

# TF semantics: a job has at most one chief and at most one evaluator.
SINGLETON_ROLES: Final = (ROLE_CHIEF, ROLE_EVALUATOR)
# Rendezvous backends the operator can wire up (torchrun's c10d needs no extra service).
RDZV_BACKENDS: Final = ("c10d",)
# spec.nprocPerNode's symbolic value: the replica's GPU count, else 1.
NPROC_AUTO: Final = "auto"
# Upper bounds that keep arithmetic on user values sane (a day of backoff is already absurd).
MAX_BACKOFF_SECONDS: Final = 86400
MAX_BACKOFF_LIMIT: Final = 1000
# elasticPolicy.lastCallTimeoutSeconds: how long c10d waits for more nodes once minReplicas
# joined. torch's own default is 30 s, paid again on every re-rendezvous below maxReplicas;
# the operator creates a job's pods together, so its workers join within seconds.
DEFAULT_LAST_CALL_TIMEOUT_S: Final = 5
MAX_LAST_CALL_TIMEOUT_S: Final = 3600
# elasticPolicy.pendingTimeoutSeconds: how long an elastic worker may stay Pending before the
# job reports it (a cluster autoscaler adds a node in minutes; a week is a forgotten job).
MAX_PENDING_TIMEOUT_S: Final = 604800
MAX_GPUS_PER_REPLICA: Final = 64
# A Kubernetes job name that every child name builds on: a DNS-1035 label (Services need one).
JOB_NAME_PATTERN: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# Container names inside the pod templates: DNS-1123 labels.
CONTAINER_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Scheduler, PriorityClass and queue names: DNS-1123 subdomains.
DNS_SUBDOMAIN_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Pod template metadata, as the API server validates it on every pod create (a bad template
# would otherwise only surface as a 422 per pod). Written for RE2 and Python alike: no
# lookaheads, and "[.]" rather than an escaped dot so the patterns embed in CEL strings as-is.
# A qualified name (label and annotation keys): an optional DNS-1123 subdomain prefix and "/",
# then a name of at most 63 characters; the prefix length (<= 253) is checked separately.
QUALIFIED_NAME_PATTERN: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
MAX_QUALIFIED_PREFIX_LENGTH: Final = 253
LABEL_VALUE_PATTERN: Final = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
MAX_LABEL_VALUE_LENGTH: Final = 63
# Bounds the CEL rule over label keys (the API server estimates its cost per map entry).
MAX_TEMPLATE_LABELS: Final = 256
# The API server's limit on all annotations of an object together (keys plus values, bytes).
MAX_ANNOTATIONS_BYTES: Final = 256 * 1024
# Container port names (IANA_SVC_NAME): at most 15 of [a-z0-9-], at least one letter, no
# leading, trailing or doubled '-'.
PORT_NAME_PATTERN: Final = r"^([0-9]+-)*[0-9]*[a-z][a-z0-9]*(-[a-z0-9]+)*$"
MAX_PORT_NAME_LENGTH: Final = 15
# Environment variable names: [-._a-zA-Z][-._a-zA-Z0-9]*, and not "." or starting with "..".
ENV_VAR_NAME_PATTERN: Final = r"^([-_a-zA-Z]|[.][-_a-zA-Z0-9])[-._a-zA-Z0-9]*$"
