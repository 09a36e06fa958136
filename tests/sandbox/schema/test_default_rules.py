"""A CRD's defaults are checked by the CEL rules of their node, as kube-apiserver does.

Upstream (``apiextensions-apiserver/pkg/apiserver/schema/defaulting/validation.go``) validates each
``default`` as written (defaults nested in it are not applied first) against the schema at its
node, then runs the ``x-kubernetes-validations`` of that node and below on it, with the default
as both ``self`` and ``oldSelf`` and no ratcheting, and, if those pass, once more as a create.
The first case below was refused by a real kube-apiserver v1.37.2, message for message.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from elastrain_sandbox.apiserver import errors
from elastrain_sandbox.apiserver.crds import CrdAdmission
from elastrain_sandbox.apiserver.resources import BUILTIN
from elastrain_sandbox.apiserver.store import AdmissionRequest
from elastrain_sandbox.validation import CompiledSchema, SchemaError
from schema_helpers import crd

ROOT = "spec.versions[0].schema.openAPIV3Schema"
SPEC = f"{ROOT}.properties[spec]"
BACKOFF = f"{SPEC}.properties[runPolicy].properties[restartBackoff]"
MESSAGE = "spec.runPolicy.restartBackoff.initialSeconds must not exceed maxSeconds"
# What kube-apiserver v1.37.2 answered to this CRD (tests/realcluster, CRD create).
REAL_REFUSAL = (
    "spec.validation.openAPIV3Schema.properties[spec].properties[runPolicy]"
    '.properties[restartBackoff].default: Invalid value: "object": no such key: initialSeconds '
    f"evaluating rule: {MESSAGE}"
)
SECONDS = {"type": "integer", "minimum": 0, "maximum": 86400}


def backoff(default: Any, rule: str = "self.initialSeconds <= self.maxSeconds") -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "initialSeconds": {**SECONDS, "default": 10},
            "maxSeconds": {**SECONDS, "default": 300},
        },
        "default": default,
        "x-kubernetes-validations": [
            {"rule": rule, "message": MESSAGE, "fieldPath": ".initialSeconds"}
        ],
    }


def with_backoff(node: dict[str, Any]) -> dict[str, Any]:
    run_policy = {"type": "object", "default": {}, "properties": {"restartBackoff": node}}
    return {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"runPolicy": run_policy}}},
    }


def refusal(schema: dict[str, Any]) -> list[str]:
    with pytest.raises(SchemaError) as info:
        CompiledSchema.from_crd(crd(schema), "v1")
    return [str(c) for c in info.value.causes]


def spec_with(prop: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"spec": {"type": "object", "properties": {"p": prop}}}}


def test_empty_default_missing_the_keys_a_rule_reads_is_refused() -> None:
    assert refusal(with_backoff(backoff({}))) == [
        f'{BACKOFF}.default: Invalid value: "object": no such key: initialSeconds '
        f"evaluating rule: {MESSAGE}"
    ]


def test_admission_refuses_it_with_the_real_servers_cause() -> None:
    rt = next(r for r in BUILTIN if r.plural == "customresourcedefinitions")
    body = crd(with_backoff(backoff({})))
    with pytest.raises(errors.ApiError) as info:
        CrdAdmission().admit(AdmissionRequest(rt, body, None, None))
    assert info.value.code == 422
    causes = info.value.status()["details"]["causes"]
    assert [f"{c['field']}: {c['message']}" for c in causes] == [REAL_REFUSAL]
    assert causes[0]["reason"] == "FieldValueInvalid"


@pytest.mark.parametrize(
    "node",
    [
        # The project's fix: a default that spells out the nested defaults.
        backoff({"initialSeconds": 10, "maxSeconds": 300}),
        # Or a rule that tolerates absent fields.
        backoff(
            {},
            rule="!has(self.initialSeconds) || !has(self.maxSeconds) "
            "|| self.initialSeconds <= self.maxSeconds",
        ),
    ],
    ids=["explicit-default", "tolerant-rule"],
)
def test_corrected_forms_are_accepted(node: dict[str, Any]) -> None:
    cs = CompiledSchema.from_crd(crd(with_backoff(node)), "v1")
    assert cs.cost_warnings == []
    rt = next(r for r in BUILTIN if r.plural == "customresourcedefinitions")
    admitted = CrdAdmission().admit(AdmissionRequest(rt, crd(with_backoff(node)), None, None))
    assert admitted["status"]["acceptedNames"]["kind"] == "Widget"


def test_default_failing_a_rule_reports_the_rule_message_at_default() -> None:
    node = backoff({"initialSeconds": 400, "maxSeconds": 300})
    assert refusal(with_backoff(node)) == [
        f"{BACKOFF}.default.initialSeconds: Invalid value: {MESSAGE}"
    ]
    scalar = {
        "type": "integer",
        "default": 0,
        "x-kubernetes-validations": [{"rule": "self > 0", "message": "must be positive"}],
    }
    assert refusal(spec_with(scalar)) == [
        f"{SPEC}.properties[p].default: Invalid value: 0: must be positive"
    ]


def test_rules_below_the_defaulted_node_check_the_default_too() -> None:
    inner = {
        "type": "integer",
        "x-kubernetes-validations": [{"rule": "self % 2 == 0", "message": "must be even"}],
    }
    outer = {"type": "object", "properties": {"n": inner}, "default": {"n": 3}}
    assert refusal(spec_with(outer)) == [
        f"{SPEC}.properties[p].default.n: Invalid value: 3: must be even"
    ]


def test_transition_rules_see_the_default_as_old_self() -> None:
    # Upstream validates a default with oldObj = the default itself, so an immutability rule
    # passes, and a transition rule no value can pass against itself fails.
    immutable = {
        "type": "string",
        "default": "a",
        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}],
    }
    CompiledSchema.from_crd(crd(spec_with(immutable)), "v1")
    growing = {
        "type": "integer",
        "default": 1,
        "x-kubernetes-validations": [{"rule": "self > oldSelf", "message": "must grow"}],
    }
    assert refusal(spec_with(growing)) == [
        f"{SPEC}.properties[p].default: Invalid value: 1: must grow"
    ]


def test_optional_old_self_rules_also_run_as_a_create() -> None:
    rule = {
        "rule": "oldSelf.hasValue() || self == 'new'",
        "optionalOldSelf": True,
        "message": "must start as new",
    }
    node = {"type": "string", "default": "old", "x-kubernetes-validations": [rule]}
    assert refusal(spec_with(node)) == [
        f'{SPEC}.properties[p].default: Invalid value: "old": must start as new'
    ]
    CompiledSchema.from_crd(crd(spec_with({**node, "default": "new"})), "v1")


def test_nested_defaults_are_not_applied_before_validating_a_default() -> None:
    node = {
        "type": "object",
        "required": ["n"],
        "properties": {"n": {"type": "integer", "default": 1}},
        "default": {},
    }
    assert refusal(spec_with(node)) == [f"{SPEC}.properties[p].default.n: Required value"]


def test_schema_errors_of_a_default_come_before_its_rules() -> None:
    node = backoff({"initialSeconds": "ten"})
    found = refusal(with_backoff(node))
    assert len(found) == 1 and found[0].startswith(
        f"{BACKOFF}.default.initialSeconds: Invalid value"
    )


def test_admission_keeps_per_version_paths_when_schemas_differ() -> None:
    rt = next(r for r in BUILTIN if r.plural == "customresourcedefinitions")
    body = crd(with_backoff(backoff({})))
    other = copy.deepcopy(body["spec"]["versions"][0])
    other.update(name="v2", storage=False)
    other["schema"]["openAPIV3Schema"]["properties"]["status"] = {"type": "object"}
    body["spec"]["versions"].append(other)
    with pytest.raises(errors.ApiError) as info:
        CrdAdmission().admit(AdmissionRequest(rt, body, None, None))
    causes = info.value.status()["details"]["causes"]
    assert [c["field"] for c in causes] == [f"{BACKOFF}.default"]
