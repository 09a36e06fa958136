"""The static cost estimate warns where a real apiserver would refuse the CRD for cost."""

from __future__ import annotations

from typing import Any

from elastrain_sandbox.validation import CompiledSchema
from schema_helpers import crd

REGEX_RULE = "self.foo.all(x, x.matches('^[a-zA-Z]*$'))"


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
    assert found[0].startswith(
        f"{rule_path}[0].rule: estimated rule cost exceeds budget by factor of "
    )
    assert found[0].endswith(
        "x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where "
        "arrays, maps, and strings are declared)"
    )
    assert float(found[0].split("factor of ")[1].split("x")[0]) > 100


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
    assert [w.split(":")[0] for w in found] == ["spec.versions[0].schema.openAPIV3Schema"]
    assert "estimated rule cost total for entire OpenAPIv3 schema exceeds budget" in found[0]
