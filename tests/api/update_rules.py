"""Which spec changes a running TrainingJob accepts: the CRD's transition rules, in Python.

The CRD refuses these updates with CEL ``oldSelf`` rules (``elastrain.api.schema``); the
operator itself never compares two specs. This model states the same policy over two parsed
jobs, so that ``test_api_parse`` can hold it to the update cases that ``test_api_schema_rules``
runs through the CRD, and docs/api.md can describe one policy. The policy, and why:

- Always immutable: the set of roles, whether the job is elastic, the rendezvous backend and
  port, ps and chief replicas (every pod's TF_CONFIG lists them) and successPolicy. Changing
  any of these means a different job; create a new one.
- Immutable unless the job was suspended: pod templates, gpus, nprocPerNode and
  schedulingPolicy. A suspended job has no pods, so on resume every pod uses the new values;
  a running job would otherwise mix old and new pods.
- Mutable: worker (and evaluator) replicas, so that ``kubectl scale`` and an HPA work, the
  elastic range, restart policies and the rest of runPolicy.

The messages are the CRD rules' own (``elastrain.api.messages``).
"""

from __future__ import annotations

from elastrain.api import constants as c
from elastrain.api import messages as m
from elastrain.api.errors import FieldError, SpecInvalid
from elastrain.api.types import TrainingJob


def update_errors(old: TrainingJob, new: TrainingJob) -> list[FieldError]:
    """Every field of ``new`` that may not differ from ``old``; empty when the update is allowed."""
    errors: list[FieldError] = []
    o, n = old.spec, new.spec
    if set(o.replica_specs) != set(n.replica_specs):
        errors.append(FieldError("spec.replicaSpecs", m.ROLES_IMMUTABLE))
    if (o.elastic_policy is None) != (n.elastic_policy is None):
        errors.append(FieldError("spec.elasticPolicy", m.ADDED_OR_REMOVED))
    elif o.elastic_policy is not None and n.elastic_policy is not None:
        if o.elastic_policy.rdzv_backend != n.elastic_policy.rdzv_backend:
            errors.append(FieldError("spec.elasticPolicy.rdzvBackend", m.IMMUTABLE))
        if o.elastic_policy.rdzv_port != n.elastic_policy.rdzv_port:
            errors.append(FieldError("spec.elasticPolicy.rdzvPort", m.IMMUTABLE))
    for role in (c.ROLE_PS, c.ROLE_CHIEF):
        before, after = o.replica_specs.get(role), n.replica_specs.get(role)
        if before and after and before.replicas != after.replicas:
            errors.append(FieldError(f"spec.replicaSpecs.{role}.replicas", m.IMMUTABLE))
    if o.success_policy != n.success_policy:
        errors.append(FieldError("spec.successPolicy", m.IMMUTABLE))
    if not o.run_policy.suspend:
        errors.extend(_pod_shape_errors(old, new))
    return errors


def _pod_shape_errors(old: TrainingJob, new: TrainingJob) -> list[FieldError]:
    """Fields that shape pods: frozen while the job may have pods."""
    errors: list[FieldError] = []
    o, n = old.spec, new.spec
    if o.nproc_per_node != n.nproc_per_node:
        errors.append(FieldError("spec.nprocPerNode", m.ONLY_WHILE_SUSPENDED))
    if o.run_policy.scheduling_policy != n.run_policy.scheduling_policy:
        errors.append(FieldError("spec.runPolicy.schedulingPolicy", m.ONLY_WHILE_SUSPENDED))
    for role, before in o.replica_specs.items():
        after = n.replica_specs.get(role)
        if after is None:
            continue
        if before.template != after.template:
            errors.append(FieldError(f"spec.replicaSpecs.{role}.template", m.ONLY_WHILE_SUSPENDED))
        if before.gpus != after.gpus:
            errors.append(FieldError(f"spec.replicaSpecs.{role}.gpus", m.ONLY_WHILE_SUSPENDED))
    return errors


def validate_update(old: TrainingJob, new: TrainingJob) -> None:
    """Raise ``SpecInvalid`` listing every disallowed change from ``old`` to ``new``."""
    errors = update_errors(old, new)
    if errors:
        raise SpecInvalid(errors)
