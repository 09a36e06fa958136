"""The validation messages, written once for the CRD's CEL rules and for the parser.

A rule the API server enforces at admission (``schema.py``) is enforced again by
``parse_training_job`` at reconcile time (``parse.py``); both say the same thing because both
take the words from here. Each constant is the message *after* the field's path:

- the CRD's rule shows ``at(path, MESSAGE)``, because the API server prints a rule's message
  as it is, and users need to see which field it is about;
- the parser reports ``FieldError(path, MESSAGE)`` (``str()`` gives ``"path: MESSAGE"``) and
  may append what it found, e.g. ``" (3 > 2)"``, which a static CEL message cannot.

The update rules (``oldSelf``) have no parser counterpart in the operator; the tests' model of
them (``tests/api/update_rules.py``) uses the same words.
"""

from __future__ import annotations

from typing import Final

from elastrain.api import constants as c


def at(path: str, message: str) -> str:
    """A CEL rule's message: the field's path, then the shared message."""
    return f"{path} {message}"


# metadata.name (root rules; the parser names the job first: "'9lives' must be ...").
JOB_NAME_TOO_LONG: Final = (
    f"must be at most {c.MAX_JOB_NAME_LENGTH} characters so that pod names "
    "<job>-<role>-<index> stay DNS labels of at most 63"
)
JOB_NAME_NOT_DNS_1035: Final = (
    "must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter) "
    "because it names the job's Service"
)

# spec.nprocPerNode
NPROC_PER_NODE: Final = 'must be an integer >= 1 or "auto"'

# spec.elasticPolicy
ELASTIC_MIN_ABOVE_MAX: Final = "must not exceed spec.elasticPolicy.maxReplicas"
TRIM_NEEDS_PENDING_TIMEOUT: Final = "needs spec.elasticPolicy.pendingTimeoutSeconds"
# Elastic scaling is torchrun's c10d rendezvous; a job with parameter servers is wired
# statically through TF_CONFIG, which every pod would need rewritten on each scale.
ELASTIC_WITH_PS: Final = (
    "must not be set on a job with ps replicas: elastic scaling applies to torchrun (DDP) "
    "workers, and a ps job is wired statically through TF_CONFIG; remove elasticPolicy or the "
    "ps role"
)

# spec.replicaSpecs.worker.replicas
WORKERS_OUTSIDE_ELASTIC_RANGE: Final = (
    "must be between spec.elasticPolicy.minReplicas and spec.elasticPolicy.maxReplicas"
)
NO_WORKERS_WITH_ALL_WORKERS: Final = (
    "must be at least 1 with successPolicy AllWorkers "
    "(to stop a job without deleting it, set spec.runPolicy.suspend)"
)
NO_WORKERS_WITH_PS: Final = "must be at least 1 when the job has ps replicas"

# spec.successPolicy
CHIEF_WITHOUT_PODS: Final = "Chief needs a chief replica or at least one worker"

# spec.runPolicy
EXIT_CODES_WITHOUT_EXIT_CODE_ROLE: Final = (
    "only applies to roles with restartPolicy ExitCode, and no role has it"
)
MIN_AVAILABLE_ABOVE_TOTAL: Final = "must not exceed the total replicas of all roles"
BACKOFF_INITIAL_ABOVE_MAX: Final = "must not exceed maxSeconds"

# Updates (CEL transition rules on oldSelf).
IMMUTABLE: Final = "is immutable; create a new job to change it"
ONLY_WHILE_SUSPENDED: Final = "can only change while the job is suspended"
ADDED_OR_REMOVED: Final = "cannot be added or removed after creation"
# A whole message: it is about spec.replicaSpecs, but names the set of roles first.
ROLES_IMMUTABLE: Final = (
    "the set of roles in spec.replicaSpecs is immutable; create a new job to add or remove a role"
)
