"""Structural pruning and defaulting, as the apiserver applies them on write and read."""

from __future__ import annotations

import copy
from typing import Any

from elastrain_sandbox.validation import CompiledSchema
from schema_helpers import crd

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "default": {},
            "properties": {
                "replicas": {"type": "integer", "default": 1},
                "policy": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "backoffLimit": {"type": "integer", "default": 6},
                        "suspend": {"type": "boolean", "default": False},
                    },
                },
                "roles": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"restartPolicy": {"type": "string", "default": "Never"}},
                    },
                },
                "ports": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "port": {"type": "integer"},
                            "protocol": {"type": "string", "default": "TCP"},
                        },
                    },
                },
                "template": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {
                        "known": {"type": "object", "properties": {"a": {"type": "string"}}}
                    },
                },
                "embedded": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object"}},
                },
                "note": {"type": "string", "nullable": True},
                "label": {"type": "string"},
                "opaque": {"type": "object"},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def schema() -> CompiledSchema:
    return CompiledSchema.from_crd(crd(SCHEMA), "v1")


def base(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": spec,
    }


def test_prune_drops_unknown_fields_and_reports_their_paths() -> None:
    cs = schema()
    obj = base(
        replicas=2,
        bogus=1,
        roles={"worker": {"restartPolicy": "Never", "typo": True}},
        ports=[{"port": 80, "extra": "x"}],
        opaque={"gone": 1},
    )
    obj["extraTop"] = 1
    assert cs.pruned_fields(obj) == [
        "spec.bogus",
        "spec.roles.worker.typo",
        "spec.ports[0].extra",
        "spec.opaque.gone",
        "extraTop",
    ]
    pruned = cs.prune(obj)
    assert pruned["spec"] == {
        "replicas": 2,
        "roles": {"worker": {"restartPolicy": "Never"}},
        "ports": [{"port": 80}],
        "opaque": {},
    }
    assert "extraTop" not in pruned


def test_prune_keeps_top_level_meta_and_does_not_touch_the_input() -> None:
    cs = schema()
    obj = base(bogus=1)
    before = copy.deepcopy(obj)
    pruned = cs.prune(obj)
    assert obj == before
    assert pruned["metadata"] == {"name": "w", "labels": {"a": "b"}}
    assert (pruned["apiVersion"], pruned["kind"]) == ("example.dev/v1", "Widget")


def test_preserve_unknown_fields_keeps_unknowns_but_prunes_known_children() -> None:
    cs = schema()
    obj = base(
        template={
            "containers": [{"name": "c", "anything": {"deep": 1}}],
            "known": {"a": "x", "b": "pruned"},
        }
    )
    obj["status"] = {"kopf": {"progress": {}}}
    pruned = cs.prune(obj)
    assert pruned["spec"]["template"] == {
        "containers": [{"name": "c", "anything": {"deep": 1}}],
        "known": {"a": "x"},
    }
    assert pruned["status"] == {"kopf": {"progress": {}}}


def test_embedded_resource_keeps_its_type_and_object_meta() -> None:
    cs = schema()
    embedded = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {},
        "bogus": 1,
    }
    assert cs.prune(base(embedded=embedded))["spec"]["embedded"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {},
    }


def test_integral_floats_read_back_as_integers() -> None:
    assert cs_prune_value(2.0) == 2
    assert isinstance(cs_prune_value(2.0), int)


def cs_prune_value(value: float) -> Any:
    return schema().prune(base(replicas=value))["spec"]["replicas"]


def test_defaults_apply_nested_including_defaulted_parents() -> None:
    obj = copy.deepcopy(base())
    del obj["spec"]
    out = schema().default(obj)
    assert out["spec"] == {"replicas": 1, "policy": {"backoffLimit": 6, "suspend": False}}


def test_defaults_fill_map_values_and_list_items() -> None:
    out = schema().default(
        base(roles={"worker": {}}, ports=[{"port": 80}], policy={"suspend": True})
    )
    assert out["spec"]["roles"] == {"worker": {"restartPolicy": "Never"}}
    assert out["spec"]["ports"] == [{"port": 80, "protocol": "TCP"}]
    assert out["spec"]["policy"] == {"suspend": True, "backoffLimit": 6}


def test_null_takes_the_default_or_is_dropped_unless_nullable() -> None:
    out = schema().default(base(replicas=None, label=None, note=None))
    assert out["spec"]["replicas"] == 1
    assert "label" not in out["spec"]
    assert out["spec"]["note"] is None


def test_prepare_is_prune_then_default() -> None:
    cs = schema()
    obj = base(policy={"bogus": 1})
    assert cs.prepare(obj) == cs.default(cs.prune(obj))
    assert cs.prepare(obj)["spec"]["policy"] == {"backoffLimit": 6, "suspend": False}


def test_declared_metadata_object_is_never_pruned() -> None:
    # kubebuilder emits `metadata: {type: object}`; ObjectMeta must survive it untouched.
    declared = {
        "type": "object",
        "properties": {"apiVersion": {"type": "string"}, "metadata": {"type": "object"}},
    }
    cs = CompiledSchema.from_crd(crd(declared), "v1")
    obj = base()
    assert cs.pruned_fields(obj) == ["spec"]
    assert cs.prepare(obj)["metadata"] == {"name": "w", "labels": {"a": "b"}}
