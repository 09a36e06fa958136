"""The CRD's schema and CEL rules, evaluated in-process by the sandbox's generic CRD validator
(``elastrain_sandbox.validation``, which mirrors kube-apiserver), held to the same bad specs and
updates as ``parse_training_job``."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from api_cases import BAD, GOOD, UPDATES, Bad, Good, Update, base_job, example_jobs
from elastrain.api import constants as c
from elastrain.api.parse import parse_training_job
from elastrain.api.schema import crd
from elastrain_sandbox.validation import CompiledSchema, FieldCause

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def schema() -> CompiledSchema:
    return CompiledSchema.from_crd(crd(), c.VERSION)


def _decode(schema: CompiledSchema, obj: Obj) -> Obj:
    """What the API server stores: the spec pruned and defaulted by the CRD schema.

    ObjectMeta is the generic registry's business, not the CRD schema's, so it is kept as sent.
    """
    out = schema.prepare(copy.deepcopy(obj))
    out["metadata"] = copy.deepcopy(obj["metadata"])
    return out


def _names(causes: list[FieldCause], field: str) -> bool:
    return any(field in cause.field or field in cause.message for cause in causes)


def test_base_job_is_accepted(schema: CompiledSchema) -> None:
    assert schema.validate(_decode(schema, base_job())) == []


@pytest.mark.parametrize(("name", "obj"), example_jobs())
def test_examples_are_accepted(schema: CompiledSchema, name: str, obj: Obj) -> None:
    assert [p for p in schema.pruned_fields(obj) if not p.startswith("metadata.")] == []
    assert schema.validate(_decode(schema, obj)) == []


@pytest.mark.parametrize("case", GOOD, ids=[g.id for g in GOOD])
def test_good_spec_is_accepted(schema: CompiledSchema, case: Good) -> None:
    obj = case.build()
    assert schema.pruned_fields(obj) == []
    assert schema.validate(_decode(schema, obj)) == []


@pytest.mark.parametrize("case", BAD, ids=[b.id for b in BAD])
def test_bad_spec_is_rejected_naming_the_field(schema: CompiledSchema, case: Bad) -> None:
    obj = case.build()
    if not case.schema:
        # Unknown fields are pruned before validation; strict field validation (kubectl's
        # default) refuses the request with exactly these paths.
        assert any(case.field in path for path in schema.pruned_fields(obj))
        return
    causes = schema.validate(_decode(schema, obj))
    if not case.crd:
        # Only the operator checks this (docs/api.md says so); the CRD must let it through.
        assert causes == [], [str(x) for x in causes]
        return
    assert _names(causes, case.field), [str(x) for x in causes]


def test_crd_rules_fit_the_cost_budget(schema: CompiledSchema) -> None:
    """Rules over maps and lists need bounds, or a real API server refuses the CRD."""
    assert schema.cost_warnings == []
    assert schema.unknown_fields == []


@pytest.mark.parametrize(("name", "obj"), [("base", base_job()), *example_jobs()])
def test_schema_defaults_equal_parser_defaults(schema: CompiledSchema, name: str, obj: Obj) -> None:
    defaulted = _decode(schema, obj)
    assert defaulted["spec"]["successPolicy"] == "AllWorkers"
    assert defaulted["spec"]["runPolicy"]["restartBackoff"]["maxSeconds"] >= 1
    assert parse_training_job(defaulted) == parse_training_job(obj)


@pytest.mark.parametrize("case", UPDATES, ids=[u.id for u in UPDATES])
def test_update_rules(schema: CompiledSchema, case: Update) -> None:
    old, new = (_decode(schema, o) for o in case.build())
    causes = schema.validate(new, old=old)
    if case.field is None:
        assert causes == []
    else:
        assert _names(causes, case.field), [str(x) for x in causes]
