"""x-kubernetes-validations: rule placement, messages, reasons, fieldPath, transition rules."""

from __future__ import annotations

from typing import Any

import pytest
from elastrain_sandbox.validation import CompiledSchema, SchemaError
from schema_helpers import crd, lines, obj, spec_schema


def rule(text: str, **extra: Any) -> dict[str, Any]:
    return {"rule": text, **extra}


def spec_rules(properties: dict[str, Any], *rules: dict[str, Any]) -> CompiledSchema:
    return spec_schema(properties, **{"x-kubernetes-validations": list(rules)})


INT = {"type": "integer"}
STR = {"type": "string"}


def test_rule_on_object_sees_self_as_that_object() -> None:
    cs = spec_rules(
        {"min": INT, "max": INT}, rule("self.min <= self.max", message="min must be <= max")
    )
    assert cs.validate(obj({"min": 1, "max": 2})) == []
    causes = cs.validate(obj({"min": 3, "max": 2}))
    assert [(c.field, c.type, c.message) for c in causes] == [
        ("spec", "FieldValueInvalid", "Invalid value: min must be <= max")
    ]


def test_default_message_names_the_rule() -> None:
    cs = spec_rules({"a": INT}, rule("  self.a > 0 "))
    assert lines(cs.validate(obj({"a": 0}))) == ["spec: Invalid value: failed rule: self.a > 0"]


def test_rule_on_scalar_reports_its_value() -> None:
    cs = spec_schema(
        {"name": {"type": "string", "x-kubernetes-validations": [rule("self.startsWith('a')")]}}
    )
    assert lines(cs.validate(obj({"name": "b"}))) == [
        "spec.name: Invalid value: \"b\": failed rule: self.startsWith('a')"
    ]


def test_root_rule_reports_nil_field_and_sees_only_name_in_metadata() -> None:
    schema = {
        "type": "object",
        "x-kubernetes-validations": [
            rule("self.metadata.name.size() <= 5", message="name too long"),
            rule("self.kind == 'Widget' && self.apiVersion.startsWith('example.dev/')"),
        ],
        "properties": {"spec": {"type": "object"}},
    }
    cs = CompiledSchema.from_crd(crd(schema), "v1")
    ok = obj({}, name="abc")
    ok["metadata"]["labels"] = {"a": "b"}
    assert cs.validate(ok) == []
    assert lines(cs.validate(obj({}, name="abcdef"))) == ["<nil>: Invalid value: name too long"]
    # cel-go refuses other metadata fields when the CRD is created, as we do.
    schema["x-kubernetes-validations"] = [rule("!has(self.metadata.labels)")]
    with pytest.raises(SchemaError, match="undefined field 'labels'"):
        CompiledSchema.from_crd(crd(schema), "v1")


def test_message_expression_and_fallback() -> None:
    cs = spec_rules(
        {"n": INT},
        rule(
            "self.n < 3",
            messageExpression="'n is ' + string(self.n) + ', want < 3'",
            message="static",
        ),
        rule("self.n < 4", messageExpression="string(self.n / 0)", message="static fallback"),
        rule("self.n < 5", messageExpression="'  padded  '"),
        rule("self.n < 6", messageExpression="'two\\nlines'"),
    )
    assert lines(cs.validate(obj({"n": 6}))) == [
        "spec: Invalid value: n is 6, want < 3",
        "spec: Invalid value: static fallback",
        "spec: Invalid value: padded",
        "spec: Invalid value: failed rule: self.n < 6",
    ]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("FieldValueForbidden", ("FieldValueForbidden", "Forbidden: nope")),
        ("FieldValueRequired", ("FieldValueRequired", "Required value: nope")),
        ("FieldValueDuplicate", ("FieldValueDuplicate", "Duplicate value")),
        ("FieldValueInvalid", ("FieldValueInvalid", "Invalid value: nope")),
    ],
)
def test_reason_maps_to_cause_type(reason: str, expected: tuple[str, str]) -> None:
    cs = spec_rules({"a": INT}, rule("false", message="nope", reason=reason))
    causes = cs.validate(obj({"a": 1}))
    assert [(c.type, c.message) for c in causes] == [expected]


def test_field_path_moves_the_error() -> None:
    props = {
        "a": {"type": "object", "properties": {"b": INT}},
        "m": {"type": "object", "additionalProperties": INT},
    }
    cs = spec_rules(
        props, rule("self.a.b > 0", fieldPath=".a.b"), rule("self.m.k > 0", fieldPath=".m['k']")
    )
    assert [c.field for c in cs.validate(obj({"a": {"b": 0}, "m": {"k": 0}}))] == [
        "spec.a.b",
        "spec.m[k]",
    ]


def test_rules_under_additional_properties_use_key_paths() -> None:
    item = {
        "type": "object",
        "properties": {"n": INT},
        "x-kubernetes-validations": [rule("self.n > 0")],
    }
    cs = spec_schema({"roles": {"type": "object", "additionalProperties": item}})
    assert [c.field for c in cs.validate(obj({"roles": {"worker": {"n": 0}}}))] == [
        "spec.roles[worker]"
    ]


def test_list_items_rules_use_index_paths() -> None:
    item = {**STR, "x-kubernetes-validations": [rule("self != 'bad'")]}
    cs = spec_schema({"l": {"type": "array", "items": item}})
    assert [c.field for c in cs.validate(obj({"l": ["ok", "bad"]}))] == ["spec.l[1]"]


def test_missing_key_is_a_field_error_not_an_exception() -> None:
    cs = spec_rules({"a": INT, "b": INT}, rule("self.b > 0"))
    assert lines(cs.validate(obj({"a": 1}))) == [
        'spec: Invalid value: "object": no such key: b evaluating rule: self.b > 0'
    ]


def test_has_guards_optional_fields() -> None:
    cs = spec_rules({"b": INT}, rule("!has(self.b) || self.b > 0"))
    assert cs.validate(obj({})) == []
    assert len(cs.validate(obj({"b": 0}))) == 1


def test_number_fields_are_doubles_in_cel() -> None:
    cs = spec_rules({"f": {"type": "number"}}, rule("self.f > 1.5"))
    assert cs.validate(obj({"f": 2})) == []


def test_macros_and_string_functions() -> None:
    props = {
        "l": {"type": "array", "items": STR},
        "m": {"type": "object", "additionalProperties": INT},
        "s": STR,
    }
    cs = spec_rules(
        props,
        rule("self.l.all(x, x in ['a', 'b'])"),
        rule("self.l.exists(x, x == 'a') && self.l.exists_one(x, x == 'b')"),
        rule("self.l.map(x, x + '!').filter(x, x == 'a!').size() == 1"),
        rule("'worker' in self.m && size(self.m) == 1"),
        rule("self.s.lowerAscii().startsWith('ab') && self.s.endsWith('Z')"),
        rule("self.s.matches('^A.*Z$')"),
        rule("self.s.contains('b') && self.s.split('b').join('-') == 'A-cZ'"),
        rule("int(self.m.worker) == 2 ? true : false"),
    )
    assert cs.validate(obj({"l": ["a", "b"], "m": {"worker": 2}, "s": "AbcZ"})) == []
    assert len(cs.validate(obj({"l": ["a", "c", "b"], "m": {"worker": 2}, "s": "AbcZ"}))) == 1


def test_preserve_unknown_fields_are_visible_to_rules() -> None:
    tmpl = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "x-kubernetes-validations": [
            rule("!has(self.hostname)", message="hostname is set by the operator")
        ],
    }
    cs = spec_schema({"template": tmpl})
    assert cs.validate(obj({"template": {"containers": []}})) == []
    assert lines(cs.validate(obj({"template": {"hostname": "x"}}))) == [
        "spec.template: Invalid value: hostname is set by the operator"
    ]


def test_null_values_skip_rules() -> None:
    cs = spec_schema(
        {"a": {**STR, "nullable": True, "x-kubernetes-validations": [rule("self == 'x'")]}}
    )
    assert cs.validate(obj({"a": None})) == []


def test_schema_errors_block_rules_and_say_so() -> None:
    cs = spec_rules({"a": INT}, rule("self.a > 0"))
    assert lines(cs.validate(obj({"a": "x"})))[-1] == (
        "<nil>: Invalid value: null: some validation rules were not checked because the object was "
        "invalid; correct the existing errors to complete validation"
    )


def test_value_errors_do_not_block_rules() -> None:
    cs = spec_rules({"a": {"type": "integer", "minimum": 5}}, rule("self.a > 3", message="a > 3"))
    assert lines(cs.validate(obj({"a": 1}))) == [
        "spec.a: Invalid value: 1: spec.a in body should be greater than or equal to 5",
        "spec: Invalid value: a > 3",
    ]


IMMUTABLE = {
    "type": "string",
    "x-kubernetes-validations": [rule("self == oldSelf", message="mode is immutable")],
}


def test_transition_rule_runs_only_on_update() -> None:
    cs = spec_schema({"mode": IMMUTABLE, "n": INT})
    old = obj({"mode": "a", "n": 1})
    assert cs.validate(obj({"mode": "b"})) == []
    assert cs.validate(obj({"mode": "a", "n": 2}), old=old) == []
    causes = cs.validate(obj({"mode": "b", "n": 1}), old=old)
    assert lines(causes) == ['spec.mode: Invalid value: "b": mode is immutable']


def test_transition_rule_skips_fields_new_in_this_update() -> None:
    cs = spec_schema({"mode": IMMUTABLE})
    assert cs.validate(obj({"mode": "b"}), old=obj({})) == []


def test_transition_rules_correlate_list_map_items_by_key() -> None:
    item = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": STR,
            "size": {**INT, "x-kubernetes-validations": [rule("self >= oldSelf")]},
        },
    }
    cs = spec_schema(
        {
            "vols": {
                "type": "array",
                "items": item,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
            }
        }
    )
    old = obj({"vols": [{"name": "a", "size": 2}, {"name": "b", "size": 2}]})
    new = obj(
        {"vols": [{"name": "b", "size": 1}, {"name": "a", "size": 3}, {"name": "c", "size": 0}]}
    )
    assert [c.field for c in cs.validate(new, old=old)] == ["spec.vols[0].size"]


def test_optional_old_self_runs_on_create_too() -> None:
    r = rule(
        "!oldSelf.hasValue() || self >= oldSelf.value()",
        optionalOldSelf=True,
        message="may only grow",
    )
    cs = spec_schema({"n": {**INT, "x-kubernetes-validations": [r]}})
    assert cs.validate(obj({"n": 1})) == []
    assert cs.validate(obj({"n": 3}), old=obj({"n": 2})) == []
    assert lines(cs.validate(obj({"n": 1}), old=obj({"n": 2}))) == [
        "spec.n: Invalid value: 1: may only grow"
    ]


def test_unchanged_values_are_ratcheted() -> None:
    cs = spec_schema(
        {
            "name": {
                "type": "string",
                "maxLength": 3,
                "x-kubernetes-validations": [rule("self != 'x'")],
            }
        }
    )
    old = obj({"name": "toolong"})
    assert cs.validate(obj({"name": "toolong"}), old=old) == []
    causes = cs.validate(obj({"name": "toolonger"}), old=old)
    assert [(c.field, c.type) for c in causes] == [
        ("spec.name", "FieldValueTooLong"),
        ("<nil>", "FieldValueInvalid"),  # the "rules were not checked" note
    ]


def test_repeated_values_report_every_location() -> None:
    # Outcomes are memoised by value: a second identical value must still get its own cause.
    item = {
        **STR,
        "x-kubernetes-validations": [rule("self != 'bad'", messageExpression="self + '!'")],
    }
    cs = spec_schema({"l": {"type": "array", "items": item}})
    for _ in range(2):
        assert lines(cs.validate(obj({"l": ["bad", "ok", "bad"]}))) == [
            'spec.l[0]: Invalid value: "bad": bad!',
            'spec.l[2]: Invalid value: "bad": bad!',
        ]


def test_untyped_scalars_show_their_value() -> None:
    port = {"x-kubernetes-int-or-string": True, "x-kubernetes-validations": [rule("self != 80")]}
    cs = spec_schema({"port": port})
    assert lines(cs.validate(obj({"port": 80}))) == [
        "spec.port: Invalid value: 80: failed rule: self != 80"
    ]


def test_rules_inside_all_of_run_on_the_same_value() -> None:
    cs = spec_schema(
        {"min": INT, "max": {"type": "number"}},
        allOf=[
            {"x-kubernetes-validations": [rule("self.min <= self.max", message="min above max")]},
            {"properties": {"max": {"x-kubernetes-validations": [rule("self < 10.0")]}}},
        ],
    )
    assert cs.validate(obj({"min": 1, "max": 2})) == []
    assert lines(cs.validate(obj({"min": 20, "max": 12}))) == [
        "spec: Invalid value: min above max",
        "spec.max: Invalid value: 12: failed rule: self < 10.0",
    ]


@pytest.mark.parametrize(
    "expr",
    [
        "self.n <= self.f",
        "self.n == 2.0",
        "self.n in [1.0, 2.0]",
        "self.l == [2, 2.5]",
        "self.n != 'two'",
        "!(true in [1])",
    ],
)
def test_numbers_compare_across_int_and_double_like_kubernetes(expr: str) -> None:
    props = {"n": INT, "f": {"type": "number"}, "l": {"type": "array", "items": {"type": "number"}}}
    cs = spec_rules(props, rule(expr))
    assert cs.validate(obj({"n": 2, "f": 2.5, "l": [2, 2.5]})) == []


def test_embedded_resources_show_only_name_in_metadata() -> None:
    emb = {
        "type": "object",
        "x-kubernetes-embedded-resource": True,
        "x-kubernetes-preserve-unknown-fields": True,
    }
    cs = spec_rules(
        {"pod": emb}, rule("!has(self.pod.metadata.labels) && self.pod.metadata.name == 'p'")
    )
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}}
    assert cs.validate(obj({"pod": pod})) == []


@pytest.mark.parametrize(
    ("expr", "error"),
    [
        ("self.replcas > 0", "ERROR: <input>:1:5: undefined field 'replcas'"),
        ("has(self.inner.nope)", "ERROR: <input>:1:15: undefined field 'nope'"),
        (
            "self.name.first == 'a'",
            "ERROR: <input>:1:10: type 'string' does not support field selection",
        ),
        ("self.items[0].nope == 1", "ERROR: <input>:1:14: undefined field 'nope'"),
        ("self.byName['a'].nope == 1", "ERROR: <input>:1:17: undefined field 'nope'"),
    ],
)
def test_unknown_fields_in_rules_fail_at_crd_creation(expr: str, error: str) -> None:
    inner = {"type": "object", "properties": {"a": INT}}
    props = {
        "replicas": INT,
        "name": STR,
        "inner": inner,
        "items": {"type": "array", "items": inner},
        "byName": {"type": "object", "additionalProperties": inner},
    }
    with pytest.raises(SchemaError) as info:
        spec_rules(props, rule(expr))
    assert str(info.value).endswith(f"compilation failed: {error}")


def test_open_parts_of_the_schema_are_dynamic_in_rules() -> None:
    props = {
        "tmpl": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "port": {"x-kubernetes-int-or-string": True},
        "labels": {"type": "object", "additionalProperties": STR},
    }
    cs = spec_rules(props, rule("!has(self.tmpl.spec) && self.labels.anything == 'x'"))
    assert cs.validate(obj({"tmpl": {}, "labels": {"anything": "x"}})) == []


def test_property_names_are_escaped_in_rules() -> None:
    props = {"max-replicas": INT, "a.b": INT, "if": INT, "x/y": INT, "__s": INT}
    cs = spec_rules(
        props,
        rule("self.max__dash__replicas == 1 && self.a__dot__b == 2 && self.__if__ == 3"),
        rule("self.x__slash__y == 4 && self.__underscores__s == 5"),
    )
    assert cs.validate(obj({"max-replicas": 1, "a.b": 2, "if": 3, "x/y": 4, "__s": 5})) == []
    assert len(cs.validate(obj({"max-replicas": 9, "a.b": 2, "if": 3, "x/y": 4, "__s": 5}))) == 1


def test_all_of_rules_resolve_field_paths_against_the_schema() -> None:
    check = rule("self.min <= self.max", fieldPath=".max", message="max below min")
    cs = spec_schema({"min": INT, "max": INT}, allOf=[{"x-kubernetes-validations": [check]}])
    assert lines(cs.validate(obj({"min": 2, "max": 1}))) == [
        "spec.max: Invalid value: max below min"
    ]
