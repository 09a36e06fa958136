"""Raw TrainingJob object -> typed ``TrainingJob``, with defaults applied and every rule checked.

The API server already enforces the CRD (``elastrain.api.schema``) at admission, but the operator
parses every object again at reconcile time with this module: a CRD applied by an old chart, or
to a server without CEL, lets bad specs through, and those must end in a precise ``InvalidSpec``
condition rather than a crash or a half-built job. So this parser checks everything the CRD
checks (the tests hold both to the same bad specs), plus what only the operator can know: the
labels and pod fields it owns itself.

All problems are collected and raised together as one ``SpecInvalid``. Pure: no I/O, no kopf or
kubernetes imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from elastrain.api import constants as c
from elastrain.api import messages as m
from elastrain.api.errors import FieldError, SpecInvalid
from elastrain.api.reader import Reader, describe
from elastrain.api.template_checks import check_template
from elastrain.api.types import (
    DEFAULT_REPLICAS,
    DEFAULT_RESTART_POLICY,
    CleanPodPolicy,
    ElasticPolicy,
    ReplicaSpec,
    RestartBackoff,
    RestartPolicy,
    RunPolicy,
    SchedulingPolicy,
    SuccessPolicy,
    TrainingJob,
    TrainingJobSpec,
)


def parse_training_job(obj: Mapping[str, Any]) -> TrainingJob:
    """Parse and validate a whole TrainingJob object; raise ``SpecInvalid`` listing every error."""
    if not isinstance(obj, Mapping):
        raise SpecInvalid([FieldError("<root>", f"must be an object, got {describe(obj)}")])
    errors: list[FieldError] = []
    if obj.get("apiVersion", c.API_VERSION) != c.API_VERSION:
        errors.append(FieldError("apiVersion", f"must be {c.API_VERSION}"))
    if obj.get("kind", c.KIND) != c.KIND:
        errors.append(FieldError("kind", f"must be {c.KIND}"))
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        errors.append(FieldError("metadata", "must be an object with a name"))
        metadata = {}
    _check_name(errors, metadata.get("name"))
    spec = _parse_spec(errors, obj.get("spec"))
    if errors or spec is None:
        raise SpecInvalid(errors)
    status = obj.get("status")
    generation = metadata.get("generation")
    return TrainingJob(
        name=str(metadata["name"]),
        namespace=str(metadata.get("namespace") or ""),
        uid=str(metadata.get("uid") or ""),
        spec=spec,
        generation=generation if isinstance(generation, int) and generation > 0 else 1,
        labels=_strings(metadata.get("labels")),
        annotations=_strings(metadata.get("annotations")),
        creation_timestamp=_optional_str(metadata.get("creationTimestamp")),
        deletion_timestamp=_optional_str(metadata.get("deletionTimestamp")),
        status=dict(status) if isinstance(status, Mapping) else {},
    )


def _strings(value: Any) -> dict[str, str]:
    """Object labels or annotations (the API server guarantees strings; a test may not)."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _check_name(errors: list[FieldError], name: Any) -> None:
    """Every child is ``<job>-<role>-<index>`` and the Service is ``<job>``: both DNS labels."""
    if not isinstance(name, str) or not name:
        errors.append(FieldError("metadata.name", "required field is missing"))
    elif len(name) > c.MAX_JOB_NAME_LENGTH:
        errors.append(FieldError("metadata.name", f"{m.JOB_NAME_TOO_LONG} (got {len(name)})"))
    elif not re.match(c.JOB_NAME_PATTERN, name):
        errors.append(FieldError("metadata.name", f"{name!r} {m.JOB_NAME_NOT_DNS_1035}"))


_SPEC_FIELDS = ("replicaSpecs", "elasticPolicy", "nprocPerNode", "runPolicy", "successPolicy")


def _parse_spec(errors: list[FieldError], raw: Any) -> TrainingJobSpec | None:
    if raw is None:
        errors.append(FieldError("spec", "required field is missing"))
        return None
    if not isinstance(raw, Mapping):
        errors.append(FieldError("spec", f"must be an object, got {describe(raw)}"))
        return None
    r = Reader(errors, "spec", raw, _SPEC_FIELDS)
    replica_specs = _parse_replica_specs(errors, r.obj_("replicaSpecs", required=True))
    elastic = _parse_elastic(errors, r.obj_("elasticPolicy"))
    run_policy = _parse_run_policy(errors, r.obj_("runPolicy") or {})
    success = r.enum("successPolicy", SuccessPolicy, SuccessPolicy.ALL_WORKERS)
    nproc = _parse_nproc(r)
    if replica_specs is not None:
        _cross_check(errors, replica_specs, elastic, run_policy, success)
    if replica_specs is None or run_policy is None or success is None or nproc is None:
        return None
    return TrainingJobSpec(
        replica_specs=replica_specs,
        run_policy=run_policy,
        elastic_policy=elastic,
        nproc_per_node=nproc,
        success_policy=success,
    )


def _parse_nproc(r: Reader) -> int | str | None:
    value = r.obj.get("nprocPerNode")
    if value is None or value == c.NPROC_AUTO:
        return c.NPROC_AUTO
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    r.error("nprocPerNode", f"{m.NPROC_PER_NODE}, got {describe(value)}")
    return None


def _parse_replica_specs(
    errors: list[FieldError], raw: Mapping[str, Any] | None
) -> dict[str, ReplicaSpec] | None:
    if raw is None:
        return None
    r = Reader(errors, "spec.replicaSpecs", raw, c.ROLES)
    if raw.get(c.ROLE_WORKER) is None:
        r.error(c.ROLE_WORKER, "required field is missing: every job has a worker role")
    out: dict[str, ReplicaSpec] = {}
    ok = True
    for role in c.ROLES:
        role_raw = r.obj_(role)
        if role_raw is None:
            ok = ok and raw.get(role) is None
            continue
        spec = _parse_replica_spec(errors, role, role_raw)
        if spec is None:
            ok = False
        else:
            out[role] = spec
    return out if ok and c.ROLE_WORKER in out else None


_REPLICA_FIELDS = ("replicas", "restartPolicy", "template", "gpus")


def _parse_replica_spec(
    errors: list[FieldError], role: str, raw: Mapping[str, Any]
) -> ReplicaSpec | None:
    r = Reader(errors, f"spec.replicaSpecs.{role}", raw, _REPLICA_FIELDS)
    maximum = 1 if role in c.SINGLETON_ROLES else c.MAX_REPLICAS
    replicas = r.int_("replicas", default=DEFAULT_REPLICAS, minimum=0, maximum=maximum)
    policy = r.enum("restartPolicy", RestartPolicy, DEFAULT_RESTART_POLICY)
    gpus = r.int_("gpus", minimum=0, maximum=c.MAX_GPUS_PER_REPLICA)
    template = r.obj_("template", required=True)
    template_ok = template is not None and check_template(r, template, gpus)
    if replicas is None or policy is None or template is None or not template_ok:
        return None
    if r.present("gpus") and gpus is None:
        return None
    return ReplicaSpec(replicas=replicas, restart_policy=policy, template=dict(template), gpus=gpus)


_ELASTIC_FIELDS = (
    "minReplicas",
    "maxReplicas",
    "rdzvBackend",
    "rdzvPort",
    "maxRestarts",
    "lastCallTimeoutSeconds",
    "pendingTimeoutSeconds",
    "trimPendingWorkers",
)


def _parse_elastic(errors: list[FieldError], raw: Mapping[str, Any] | None) -> ElasticPolicy | None:
    if raw is None:
        return None
    r = Reader(errors, "spec.elasticPolicy", raw, _ELASTIC_FIELDS)
    lo = r.int_("minReplicas", minimum=1, maximum=c.MAX_REPLICAS, required=True)
    hi = r.int_("maxReplicas", minimum=1, maximum=c.MAX_REPLICAS, required=True)
    backend = r.obj.get("rdzvBackend", c.RDZV_BACKENDS[0])
    if backend not in c.RDZV_BACKENDS:
        r.error("rdzvBackend", f"must be one of {', '.join(c.RDZV_BACKENDS)}, got {backend!r}")
    port = r.int_("rdzvPort", default=c.DEFAULT_RDZV_PORT, minimum=1, maximum=65535)
    restarts = r.int_("maxRestarts", default=3, minimum=0, maximum=c.MAX_BACKOFF_LIMIT)
    last_call = r.int_(
        "lastCallTimeoutSeconds",
        default=c.DEFAULT_LAST_CALL_TIMEOUT_S,
        minimum=0,
        maximum=c.MAX_LAST_CALL_TIMEOUT_S,
    )
    pending = r.int_("pendingTimeoutSeconds", minimum=1, maximum=c.MAX_PENDING_TIMEOUT_S)
    trim = r.bool_("trimPendingWorkers", default=False)
    if trim and "pendingTimeoutSeconds" not in r.obj:
        r.error("trimPendingWorkers", m.TRIM_NEEDS_PENDING_TIMEOUT)
    if lo is not None and hi is not None and lo > hi:
        r.error("minReplicas", f"{m.ELASTIC_MIN_ABOVE_MAX} ({lo} > {hi})")
        return None
    if lo is None or hi is None or port is None or restarts is None or last_call is None:
        return None
    if backend not in c.RDZV_BACKENDS:
        return None
    return ElasticPolicy(lo, hi, str(backend), port, restarts, last_call, pending, bool(trim))


_RUN_FIELDS = (
    "backoffLimit",
    "activeDeadlineSeconds",
    "ttlSecondsAfterFinished",
    "cleanPodPolicy",
    "suspend",
    "schedulingPolicy",
    "retryableExitCodes",
    "restartBackoff",
)


def _parse_run_policy(errors: list[FieldError], raw: Mapping[str, Any]) -> RunPolicy | None:
    r = Reader(errors, "spec.runPolicy", raw, _RUN_FIELDS)
    before = len(errors)
    backoff_limit = r.int_("backoffLimit", default=6, minimum=0, maximum=c.MAX_BACKOFF_LIMIT)
    deadline = r.int_("activeDeadlineSeconds", minimum=1)
    ttl = r.int_("ttlSecondsAfterFinished", minimum=0)
    clean = r.enum("cleanPodPolicy", CleanPodPolicy, RunPolicy.clean_pod_policy)
    suspend = r.bool_("suspend", default=False)
    scheduling = _parse_scheduling(errors, r.obj_("schedulingPolicy"))
    codes = _parse_exit_codes(r)
    backoff = _parse_backoff(errors, r.obj_("restartBackoff") or {})
    if len(errors) > before:
        return None
    if backoff_limit is None or clean is None or suspend is None or backoff is None:
        return None  # unreachable: each is None only with an error reported above
    return RunPolicy(
        backoff_limit=backoff_limit,
        active_deadline_seconds=deadline,
        ttl_seconds_after_finished=ttl,
        clean_pod_policy=clean,
        suspend=suspend,
        scheduling_policy=scheduling,
        retryable_exit_codes=codes,
        restart_backoff=backoff,
    )


_SCHEDULING_FIELDS = ("schedulerName", "priorityClassName", "queue", "minAvailable")


def _parse_scheduling(
    errors: list[FieldError], raw: Mapping[str, Any] | None
) -> SchedulingPolicy | None:
    if raw is None:
        return None
    r = Reader(errors, "spec.runPolicy.schedulingPolicy", raw, _SCHEDULING_FIELDS)
    what = "a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')"
    return SchedulingPolicy(
        scheduler_name=r.str_("schedulerName", pattern=c.DNS_SUBDOMAIN_PATTERN, what=what),
        priority_class_name=r.str_("priorityClassName", pattern=c.DNS_SUBDOMAIN_PATTERN, what=what),
        queue=r.str_("queue", pattern=c.DNS_SUBDOMAIN_PATTERN, what=what),
        min_available=r.int_("minAvailable", minimum=1),
    )


def _parse_exit_codes(r: Reader) -> tuple[int, ...] | None:
    raw = r.obj.get("retryableExitCodes")
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        r.error("retryableExitCodes", "must be a non-empty list of exit codes 1..255")
        return None
    seen: set[int] = set()
    for i, code in enumerate(raw):
        at = f"retryableExitCodes[{i}]"
        if isinstance(code, bool) or not isinstance(code, int) or not 1 <= code <= 255:
            r.error(at, f"must be an exit code between 1 and 255, got {describe(code)}")
        elif code in seen:
            r.error(at, f"duplicate exit code {code}")
        else:
            seen.add(code)
    return tuple(raw)


def _parse_backoff(errors: list[FieldError], raw: Mapping[str, Any]) -> RestartBackoff | None:
    r = Reader(errors, "spec.runPolicy.restartBackoff", raw, ("initialSeconds", "maxSeconds"))
    defaults = RestartBackoff()
    top = c.MAX_BACKOFF_SECONDS
    initial = r.int_("initialSeconds", default=defaults.initial_seconds, minimum=0, maximum=top)
    most = r.int_("maxSeconds", default=defaults.max_seconds, minimum=0, maximum=top)
    if initial is None or most is None:
        return None
    if initial > most:
        r.error("initialSeconds", f"{m.BACKOFF_INITIAL_ABOVE_MAX} ({initial} > {most})")
        return None
    return RestartBackoff(initial_seconds=initial, max_seconds=most)


def _cross_check(
    errors: list[FieldError],
    roles: dict[str, ReplicaSpec],
    elastic: ElasticPolicy | None,
    run_policy: RunPolicy | None,
    success: SuccessPolicy | None,
) -> None:
    """Rules spanning several fields; the CRD states each as a CEL rule with the same meaning."""
    workers = roles[c.ROLE_WORKER].replicas
    chief = roles[c.ROLE_CHIEF].replicas if c.ROLE_CHIEF in roles else 0
    ps = roles[c.ROLE_PS].replicas if c.ROLE_PS in roles else 0
    worker_path = "spec.replicaSpecs.worker.replicas"
    if elastic is not None and not elastic.min_replicas <= workers <= elastic.max_replicas:
        lo, hi = elastic.min_replicas, elastic.max_replicas
        errors.append(
            FieldError(
                worker_path, f"{m.WORKERS_OUTSIDE_ELASTIC_RANGE} ({lo}..{hi}), got {workers}"
            )
        )
    elif success is SuccessPolicy.ALL_WORKERS and workers < 1:
        errors.append(FieldError(worker_path, m.NO_WORKERS_WITH_ALL_WORKERS))
    elif success is SuccessPolicy.CHIEF and chief < 1 and workers < 1:
        errors.append(FieldError("spec.successPolicy", m.CHIEF_WITHOUT_PODS))
    elif ps > 0 and workers < 1:
        errors.append(FieldError(worker_path, m.NO_WORKERS_WITH_PS))
    if elastic is not None and ps > 0:
        errors.append(FieldError("spec.elasticPolicy", m.ELASTIC_WITH_PS))
    if run_policy is None:
        return
    if run_policy.retryable_exit_codes is not None and not any(
        r.restart_policy is RestartPolicy.EXIT_CODE for r in roles.values()
    ):
        errors.append(
            FieldError("spec.runPolicy.retryableExitCodes", m.EXIT_CODES_WITHOUT_EXIT_CODE_ROLE)
        )
    scheduling = run_policy.scheduling_policy
    total = sum(r.replicas for r in roles.values())
    if scheduling and scheduling.min_available is not None and scheduling.min_available > total:
        errors.append(
            FieldError(
                "spec.runPolicy.schedulingPolicy.minAvailable",
                f"{m.MIN_AVAILABLE_ABOVE_TOTAL} ({scheduling.min_available} > {total})",
            )
        )
