"""List types, junctors (allOf/anyOf/oneOf/not), embedded resources and additionalProperties."""

from __future__ import annotations

from typing import Any

from schema_helpers import lines, obj, spec_schema

PORT = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
}


def test_list_type_set_reports_each_duplicate() -> None:
    cs = spec_schema(
        {"s": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}}
    )
    assert cs.validate(obj({"s": ["a", "b"]})) == []
    causes = cs.validate(obj({"s": ["a", "b", "a", "a", "b"]}))
    # Upstream reports only the second appearance of each repeated value.
    assert [(c.type, str(c)) for c in causes] == [
        ("FieldValueDuplicate", 'spec.s[2]: Duplicate value: "a"'),
        ("FieldValueDuplicate", 'spec.s[4]: Duplicate value: "b"'),
    ]


def test_list_type_set_treats_true_and_one_as_different() -> None:
    cs = spec_schema(
        {
            "s": {
                "type": "array",
                "items": {"x-kubernetes-int-or-string": True},
                "x-kubernetes-list-type": "set",
            }
        }
    )
    assert cs.validate(obj({"s": [1, "1"]})) == []


def test_list_type_map_keys_are_unique() -> None:
    ports = {
        "type": "array",
        "items": PORT,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    }
    cs = spec_schema({"ports": ports})
    assert cs.validate(obj({"ports": [{"name": "a"}, {"name": "b"}]})) == []
    assert lines(
        cs.validate(obj({"ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]}))
    ) == ['spec.ports[1]: Duplicate value: {"name":"a"}']


def test_list_type_map_with_several_keys_and_key_paths_under_maps() -> None:
    item = {
        "type": "object",
        "required": ["port", "protocol"],
        "properties": {"port": {"type": "integer"}, "protocol": {"type": "string"}},
    }
    ports = {
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["port", "protocol"],
    }
    cs = spec_schema({"roles": {"type": "object", "additionalProperties": ports}})
    good = [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"}]
    assert cs.validate(obj({"roles": {"w": good}})) == []
    bad = [*good, {"port": 80, "protocol": "TCP"}]
    assert lines(cs.validate(obj({"roles": {"w": bad}}))) == [
        'spec.roles[w][2]: Duplicate value: {"port":80,"protocol":"TCP"}'
    ]


def test_list_type_map_items_must_be_objects() -> None:
    ports = {
        "type": "array",
        "items": {**PORT, "nullable": True},
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    }
    cs = spec_schema({"ports": ports})
    assert cs.validate(obj({"ports": [{"name": "a"}, None]})) == []
    assert lines(cs.validate(obj({"ports": [{"name": "a"}, "b"]}))) == [
        'spec.ports[1]: Invalid value: "string": spec.ports[1] in body must be of type object: '
        '"string"',
        'spec.ports[1]: Invalid value: "b": must be an object for an array of list-type map',
    ]


def test_list_type_atomic_allows_duplicates() -> None:
    cs = spec_schema(
        {"s": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"}}
    )
    assert cs.validate(obj({"s": ["a", "a"]})) == []


def test_map_type_is_accepted_on_objects() -> None:
    m = {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "x-kubernetes-map-type": "atomic",
    }
    assert spec_schema({"m": m}).validate(obj({"m": {"a": "b"}})) == []


def test_any_of_reports_composite_and_closest_failure() -> None:
    props = {"n": {"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 0}]}}
    cs = spec_schema(props)
    assert cs.validate(obj({"n": 11})) == []
    assert cs.validate(obj({"n": -1})) == []
    assert lines(cs.validate(obj({"n": 5}))) == [
        '<nil>: Invalid value: "": "spec.n" must validate at least one schema (anyOf)',
        "spec.n: Invalid value: 5: spec.n in body should be greater than or equal to 10",
    ]


def test_one_of_needs_exactly_one() -> None:
    spec: dict[str, Any] = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
    }
    cs = spec_schema(spec["properties"], oneOf=[{"required": ["a"]}, {"required": ["b"]}])
    assert cs.validate(obj({"a": "x"})) == []
    assert lines(cs.validate(obj({"a": "x", "b": "y"}))) == [
        '<nil>: Invalid value: "": "spec" must validate one and only one schema (oneOf). '
        "Found 2 valid alternatives"
    ]
    assert lines(cs.validate(obj({}))) == [
        '<nil>: Invalid value: "": '
        '"spec" must validate one and only one schema (oneOf). Found none valid',
        "spec.a: Required value",
    ]


def test_all_of_reports_every_branch() -> None:
    cs = spec_schema({"s": {"type": "string", "allOf": [{"minLength": 2}, {"pattern": "^a"}]}})
    assert cs.validate(obj({"s": "ab"})) == []
    assert lines(cs.validate(obj({"s": "b"}))) == [
        'spec.s: Invalid value: "b": spec.s in body should be at least 2 chars long',
        "spec.s: Invalid value: \"b\": spec.s in body should match '^a'",
        '<nil>: Invalid value: "": "spec.s" must validate all the schemas (allOf). None validated',
    ]


def test_not() -> None:
    cs = spec_schema({"s": {"type": "string", "not": {"enum": ["forbidden"]}}})
    assert cs.validate(obj({"s": "ok"})) == []
    assert lines(cs.validate(obj({"s": "forbidden"}))) == [
        '<nil>: Invalid value: "": "spec.s" must not validate the schema (not)'
    ]


def test_int_or_string_with_any_of_types_is_structural() -> None:
    port = {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
    cs = spec_schema({"port": port})
    assert cs.validate(obj({"port": 8080})) == []
    assert cs.validate(obj({"port": "8080"})) == []


def test_embedded_resource_needs_api_version_and_kind() -> None:
    emb = {
        "type": "object",
        "x-kubernetes-embedded-resource": True,
        "x-kubernetes-preserve-unknown-fields": True,
    }
    cs = spec_schema({"obj": emb})
    assert cs.validate(obj({"obj": {"apiVersion": "v1", "kind": "Pod"}})) == []
    assert lines(cs.validate(obj({"obj": {"kind": ""}}))) == [
        "spec.obj.apiVersion: Required value",
        'spec.obj.kind: Invalid value: "": must not be empty',
    ]
    assert lines(cs.validate(obj({"obj": {"apiVersion": "a/b/c", "kind": "My_Kind"}}))) == [
        'spec.obj.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c',
        'spec.obj.kind: Invalid value: "My_Kind": may have mixed case, but should otherwise '
        "match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
        "start with an alphabetic character, and end with an alphanumeric character (e.g. "
        "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
    ]


def test_additional_properties_false_forbids_unknown_keys_kept_by_preserve() -> None:
    cs = spec_schema(
        {
            "m": {
                "type": "object",
                "additionalProperties": False,
                "x-kubernetes-preserve-unknown-fields": True,
            }
        }
    )
    assert lines(cs.validate(obj({"m": {"x": 1}}))) == [
        'spec.m: Invalid value: "x": spec.m.x in body is a forbidden property'
    ]


def test_root_type_errors_use_nil_field() -> None:
    cs = spec_schema({})
    causes = cs.validate([])  # type: ignore[arg-type]
    assert lines(causes) == [
        '<nil>: Invalid value: "array":  in body must be of type object: "array"'
    ]
