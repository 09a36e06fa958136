"""The static cost estimate warns where a real apiserver would refuse the CRD for cost."""

from __future__ import annotations

from typing import Any

import pytest
from elastrain_sandbox.apiserver import errors
from elastrain_sandbox.apiserver.crds import CrdAdmission
from elastrain_sandbox.apiserver.resources import BUILTIN
from elastrain_sandbox.apiserver.store import AdmissionRequest
from elastrain_sandbox.validation import CompiledSchema, SchemaError
from schema_helpers import crd

REGEX_RULE = "self.foo.all(x, x.matches('^[a-zA-Z]*$'))"
ROOT = "spec.versions[0].schema.openAPIV3Schema"
SPEC = f"{ROOT}.properties[spec]"
HINT = (
    "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, "
    "maps, and strings are declared)"
)


def warnings(spec: dict[str, Any], rule: str) -> list[str]:
    schema = {
        "type": "object",
        "properties": {"spec": {**spec, "x-kubernetes-validations": [{"rule": rule}]}},
    }
    return CompiledSchema.from_crd(crd(schema), "v1").cost_warnings


def strings(**bounds: int) -> dict[str, Any]:
    item = {"type": "string", **({"maxLength": bounds["length"]} if "length" in bounds else {})}
    array = {
        "type": "array",
        "items": item,
        **({"maxItems": bounds["items"]} if "items" in bounds else {}),
    }
    return {"type": "object", "properties": {"foo": array}}


def test_unbounded_list_walked_by_a_regex_is_flagged() -> None:
    # The example of the Kubernetes docs: refused by the apiserver "by a factor of more than 100x".
    found = warnings(strings(), REGEX_RULE)
    rule_path = "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations"
    assert found[0] == (
        f"{rule_path}[0].rule: estimated rule cost exceeds budget by factor of more than 100x "
        f"{HINT}"
    )


def test_bounds_make_the_same_rule_cheap() -> None:
    assert warnings(strings(items=25, length=10), REGEX_RULE) == []


def test_cheap_rules_on_unbounded_fields_are_fine() -> None:
    spec = {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "m": {"type": "object", "additionalProperties": {"type": "object"}},
        },
    }
    assert warnings(spec, "self.s.startsWith('a') && self.m.all(k, k in ['worker', 'chief'])") == []


def test_rules_inside_unbounded_lists_add_up_for_the_whole_crd() -> None:
    item: dict[str, Any] = {
        "type": "object",
        "properties": {"s": {"type": "string", "maxLength": 1024}},
        "x-kubernetes-validations": [{"rule": "self.s.matches('^[a-z]+$')"}],
    }
    schema = {"type": "object", "properties": {"spec": {"type": "array", "items": item}}}
    found = CompiledSchema.from_crd(crd(schema), "v1").cost_warnings
    # As upstream: the rule's cost times the list's worst-case length is over the per-rule
    # budget too, and it is named as a contributor to the total.
    rule_path = f"{SPEC}.items.x-kubernetes-validations[0].rule"
    assert [w.split(": ")[0] for w in found] == [rule_path, rule_path, ROOT]
    assert found[1] == (
        f"{rule_path}: contributed to estimated rule cost total exceeding cost limit for entire "
        "OpenAPIv3 schema"
    )
    assert "estimated rule cost total for entire OpenAPIv3 schema exceeds budget" in found[2]


# The spec of the project's TrainingJob as kube-apiserver v1.37.2 costed it: nine cheaper rules,
# then a transition rule on an x-kubernetes-int-or-string field.
SUSPENDED = (
    "(has(oldSelf.runPolicy) && has(oldSelf.runPolicy.suspend) && oldSelf.runPolicy.suspend)"
)
TYPE_AND_VALUE = (
    f"{SUSPENDED} || (type(self.nprocPerNode) == type(oldSelf.nprocPerNode) "
    "&& self.nprocPerNode == oldSelf.nprocPerNode)"
)
TYPE_ONLY = f"{SUSPENDED} || type(self.nprocPerNode) == type(oldSelf.nprocPerNode)"
VALUE_ONLY = f"{SUSPENDED} || self.nprocPerNode == oldSelf.nprocPerNode"


def nproc_crd(rule: str) -> dict[str, Any]:
    spec = {
        "type": "object",
        "properties": {
            "nprocPerNode": {"x-kubernetes-int-or-string": True, "default": "auto"},
            "runPolicy": {"type": "object", "properties": {"suspend": {"type": "boolean"}}},
        },
        "x-kubernetes-validations": [
            *({"rule": "self == oldSelf || true"} for _ in range(9)),
            {"rule": rule, "message": "spec.nprocPerNode can only change while suspended"},
        ],
    }
    return crd({"type": "object", "properties": {"spec": spec}})


def real_refusal(root: str) -> list[str]:
    """kube-apiserver's three causes, under the path it names the schema by."""
    rule = f"{root}.properties[spec].x-kubernetes-validations[9].rule"
    return [
        f"{rule}: Forbidden: estimated rule cost exceeds budget by factor of more than 100x {HINT}",
        f"{rule}: Forbidden: contributed to estimated rule cost total exceeding cost limit for "
        "entire OpenAPIv3 schema",
        f"{root}: Forbidden: x-kubernetes-validations estimated rule cost total for entire "
        f"OpenAPIv3 schema exceeds budget by factor of more than 100x {HINT}",
    ]


@pytest.mark.parametrize("rule", [TYPE_AND_VALUE, TYPE_ONLY], ids=["type-and-value", "type-only"])
def test_comparing_types_of_int_or_string_values_is_refused(rule: str) -> None:
    # cel-go costs == as a tenth of the smaller operand's size; a type() result has no size the
    # estimator can bound (2**64 - 1), so comparing two of them blows any budget.
    with pytest.raises(SchemaError) as info:
        CompiledSchema.from_crd(nproc_crd(rule), "v1")
    assert [str(c) for c in info.value.causes] == real_refusal(ROOT)


def test_admission_refuses_it_with_the_real_servers_causes() -> None:
    rt = next(r for r in BUILTIN if r.plural == "customresourcedefinitions")
    with pytest.raises(errors.ApiError) as info:
        CrdAdmission().admit(AdmissionRequest(rt, nproc_crd(TYPE_AND_VALUE), None, None))
    causes = info.value.status()["details"]["causes"]
    assert [f"{c['field']}: {c['message']}" for c in causes] == real_refusal(
        "spec.validation.openAPIV3Schema"
    )
    assert {c["reason"] for c in causes} == {"FieldValueForbidden"}


def test_plain_equality_of_int_or_string_values_is_accepted() -> None:
    # Sized by the schema: an int-or-string is at most a request (3 MiB) long, a tenth of that
    # is well within the budget. kube-apiserver accepts this form.
    cs = CompiledSchema.from_crd(nproc_crd(VALUE_ONLY), "v1")
    assert cs.cost_warnings == []
    rt = next(r for r in BUILTIN if r.plural == "customresourcedefinitions")
    CrdAdmission().admit(AdmissionRequest(rt, nproc_crd(VALUE_ONLY), None, None))


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        # A type name is sized as the node the rule sits on: an object (0) or an int-or-string.
        (
            {"type": "object", "properties": {"n": {"x-kubernetes-int-or-string": True}}},
            "type(self.n) == int || type(self.n) != string",
        ),
        ({"x-kubernetes-int-or-string": True}, "type(self) == int ? self >= 1 : self == 'auto'"),
    ],
)
def test_comparing_a_type_with_a_type_name_is_cheap(spec: dict[str, Any], rule: str) -> None:
    assert warnings(spec, rule) == []


def test_equality_of_unbounded_strings_costs_their_length() -> None:
    def pair(**bounds: int) -> dict[str, Any]:
        text = {"type": "string", **bounds}
        return {"type": "object", "properties": {"a": text, "b": text}}

    rule = "self.all(p, p.a == p.b)"
    unbounded = {"type": "array", "items": pair()}
    assert warnings(unbounded, rule)[0].startswith(f"{SPEC}.x-kubernetes-validations[0].rule: ")
    bounded = {"type": "array", "maxItems": 100, "items": pair(maxLength=64)}
    assert warnings(bounded, rule) == []
