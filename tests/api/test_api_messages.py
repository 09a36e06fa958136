"""One message table (``elastrain.api.messages``) for the CRD's rules and the parser.

Every bad spec that a cross-field rule refuses is refused by the CRD (evaluated in-process by
the sandbox's validator) and by ``parse_training_job`` with the same words; every refused
update is refused by the CRD and by the tests' update model (``update_rules``) with the same
words. Every entry of the table is used by at least one case here.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from api_cases import BAD, UPDATES, W
from elastrain.api import constants as c
from elastrain.api import messages as m
from elastrain.api.errors import SpecInvalid
from elastrain.api.parse import parse_training_job
from elastrain.api.schema import crd
from elastrain_sandbox.validation import CompiledSchema, FieldCause
from update_rules import update_errors

Obj = dict[str, Any]

# (bad case id in api_cases.BAD, the field, the shared message)
SPEC_RULES = [
    ("elastic-with-ps", "spec.elasticPolicy", m.ELASTIC_WITH_PS),
    ("elastic-replicas-above-max", f"{W}.replicas", m.WORKERS_OUTSIDE_ELASTIC_RANGE),
    ("elastic-replicas-below-min", f"{W}.replicas", m.WORKERS_OUTSIDE_ELASTIC_RANGE),
    ("elastic-min-above-max", "spec.elasticPolicy.minReplicas", m.ELASTIC_MIN_ABOVE_MAX),
    (
        "elastic-trim-without-pending-timeout",
        "spec.elasticPolicy.trimPendingWorkers",
        m.TRIM_NEEDS_PENDING_TIMEOUT,
    ),
    ("all-workers-zero", f"{W}.replicas", m.NO_WORKERS_WITH_ALL_WORKERS),
    ("chief-policy-nobody", "spec.successPolicy", m.CHIEF_WITHOUT_PODS),
    ("ps-without-workers", f"{W}.replicas", m.NO_WORKERS_WITH_PS),
    (
        "exit-codes-without-exitcode-role",
        "spec.runPolicy.retryableExitCodes",
        m.EXIT_CODES_WITHOUT_EXIT_CODE_ROLE,
    ),
    (
        "min-available-above-total",
        "spec.runPolicy.schedulingPolicy.minAvailable",
        m.MIN_AVAILABLE_ABOVE_TOTAL,
    ),
    (
        "backoff-initial-above-max",
        "spec.runPolicy.restartBackoff.initialSeconds",
        m.BACKOFF_INITIAL_ABOVE_MAX,
    ),
    ("nproc-zero", "spec.nprocPerNode", m.NPROC_PER_NODE),
    ("name-too-long", "metadata.name", m.JOB_NAME_TOO_LONG),
    ("name-not-dns-1035", "metadata.name", m.JOB_NAME_NOT_DNS_1035),
]

# (update case id in api_cases.UPDATES, the field, the CRD rule's whole message, the shared one)
UPDATE_RULES = [
    ("add-role", "spec.replicaSpecs", m.ROLES_IMMUTABLE, m.ROLES_IMMUTABLE),
    ("add-elastic", "spec.elasticPolicy", None, m.ADDED_OR_REMOVED),
    ("remove-elastic", "spec.elasticPolicy", None, m.ADDED_OR_REMOVED),
    ("rdzv-port", "spec.elasticPolicy.rdzvPort", None, m.IMMUTABLE),
    ("ps-replicas", "spec.replicaSpecs.ps.replicas", None, m.IMMUTABLE),
    ("success-policy", "spec.successPolicy", None, m.IMMUTABLE),
    ("template-running", f"{W}.template", None, m.ONLY_WHILE_SUSPENDED),
    ("gpus-running", f"{W}.gpus", None, m.ONLY_WHILE_SUSPENDED),
    ("nproc-running", "spec.nprocPerNode", None, m.ONLY_WHILE_SUSPENDED),
    ("scheduling-running", "spec.runPolicy.schedulingPolicy", None, m.ONLY_WHILE_SUSPENDED),
]


@pytest.fixture(scope="module")
def schema() -> CompiledSchema:
    return CompiledSchema.from_crd(crd(), c.VERSION)


def _decode(schema: CompiledSchema, obj: Obj) -> Obj:
    """What the API server stores: pruned and defaulted by the CRD schema, metadata as sent."""
    out = schema.prepare(copy.deepcopy(obj))
    out["metadata"] = copy.deepcopy(obj["metadata"])
    return out


def _messages(causes: list[FieldCause]) -> list[str]:
    return [cause.message for cause in causes]


@pytest.mark.parametrize(("case_id", "field", "message"), SPEC_RULES)
def test_the_crd_and_the_parser_refuse_a_spec_in_the_same_words(
    schema: CompiledSchema, case_id: str, field: str, message: str
) -> None:
    (case,) = [b for b in BAD if b.id == case_id]
    obj = case.build()

    causes = schema.validate(_decode(schema, obj))
    assert any(m.at(field, message) in text for text in _messages(causes)), _messages(causes)

    with pytest.raises(SpecInvalid) as info:
        parse_training_job(obj)
    said = [e.message for e in info.value.errors if e.path == field]
    assert any(message in text for text in said), [str(e) for e in info.value.errors]


@pytest.mark.parametrize(("case_id", "field", "cel", "message"), UPDATE_RULES)
def test_the_crd_and_the_update_model_refuse_an_update_in_the_same_words(
    schema: CompiledSchema, case_id: str, field: str, cel: str | None, message: str
) -> None:
    (case,) = [u for u in UPDATES if u.id == case_id]
    assert case.field == field
    old_obj, new_obj = case.build()

    old, new = (_decode(schema, o) for o in (old_obj, new_obj))
    causes = schema.validate(new, old=old)
    expected = cel if cel is not None else m.at(field, message)
    assert any(expected in text for text in _messages(causes)), _messages(causes)

    errors = update_errors(parse_training_job(old_obj), parse_training_job(new_obj))
    assert any(e.path == field and e.message == message for e in errors), errors


def test_every_message_in_the_table_is_checked_here() -> None:
    table = {
        name: value for name, value in vars(m).items() if name.isupper() and isinstance(value, str)
    }
    checked = {message for *_, message in SPEC_RULES} | {message for *_, message in UPDATE_RULES}
    assert sorted(name for name, value in table.items() if value not in checked) == []
