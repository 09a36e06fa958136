"""Whatever a client sends, the engine answers with causes and never raises (the API server is
long-running: one bad object must not take it down)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from elastrain_sandbox.validation import CompiledSchema, FieldCause, SchemaError
from elastrain_sandbox.validation.keywords import RULE_KEYS, SCHEMA_KEYS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schema_helpers import crd

REPO = Path(__file__).resolve().parents[3]
CRD = yaml.safe_load((REPO / "crds" / "trainingjobs.elastrain.dev.yaml").read_text())
SCHEMA = CompiledSchema.from_crd(CRD, CRD["spec"]["versions"][0]["name"])

scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
# Objects shaped like TrainingJobs, with arbitrary values where the fields go.
role = st.fixed_dictionaries(
    {}, optional={"replicas": json_values, "restartPolicy": json_values, "template": json_values}
)
spec = st.fixed_dictionaries(
    {},
    optional={
        "replicaSpecs": st.dictionaries(
            st.sampled_from(["worker", "chief", "ps", "x"]), role | json_values, max_size=3
        ),
        "elasticPolicy": json_values,
        "runPolicy": json_values,
    },
)
objects = st.fixed_dictionaries(
    {
        "apiVersion": st.just("elastrain.dev/v1alpha1"),
        "kind": st.just("TrainingJob"),
        "metadata": st.fixed_dictionaries({"name": st.text(min_size=1, max_size=70)}),
        "spec": spec | json_values,
    }
)


def assert_causes(causes: Any) -> None:
    assert isinstance(causes, list)
    assert all(isinstance(c, FieldCause) and c.field and c.message for c in causes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(new=objects, old=objects)
def test_any_object_gets_causes_never_an_exception(
    new: dict[str, Any], old: dict[str, Any]
) -> None:
    prepared = SCHEMA.prepare(new)
    assert_causes(SCHEMA.validate(prepared))
    assert_causes(SCHEMA.validate(prepared, old=SCHEMA.prepare(old)))
    assert_causes(SCHEMA.validate(new, old=old))


# Schemas built from real keywords with arbitrary values, so the parser meets every bad shape.
keyword_values = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False)
keyword_values |= st.sampled_from(
    ["object", "array", "string", "integer", "map", "set", "self > 1", "("]
)
schemas = st.recursive(
    keyword_values,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(sorted(SCHEMA_KEYS | RULE_KEYS | {"a", "b"})), inner, max_size=5
        )
    ),
    max_leaves=25,
)
small_values = st.recursive(
    keyword_values,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "x"]), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=schemas, new=small_values, old=small_values)
def test_any_schema_is_compiled_or_refused_and_then_never_raises(
    raw: Any, new: Any, old: Any
) -> None:
    try:
        cs = CompiledSchema.from_crd(crd({"type": "object", "properties": {"spec": raw}}), "v1")
    except SchemaError as exc:
        assert exc.causes
        return
    obj, previous = wrap(new), wrap(old)
    assert_causes(cs.validate(cs.prepare(obj)))
    assert_causes(cs.validate(cs.prepare(obj), old=cs.prepare(previous)))
    assert_causes(cs.validate(obj, old=previous))
    assert isinstance(cs.pruned_fields(obj), list)


def wrap(spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec,
    }


def test_non_objects_are_reported_not_raised() -> None:
    for bad in (None, [], [1], "x", 5):
        assert SCHEMA.prune(bad) == bad  # type: ignore[arg-type]
        assert SCHEMA.pruned_fields(bad) == []  # type: ignore[arg-type]
        causes = SCHEMA.validate(SCHEMA.prepare(bad))  # type: ignore[arg-type]
        assert causes[0].field == "<nil>"
        assert causes[0].type == "FieldValueTypeInvalid"


@settings(max_examples=60, deadline=None)
@given(
    raw=json_values,
    versions=st.lists(json_values | st.fixed_dictionaries({"name": st.just("v1")}), max_size=2),
)
def test_any_crd_object_is_compiled_or_refused(raw: Any, versions: list[Any]) -> None:
    for candidate in (raw, {"spec": raw}, {"spec": {"versions": versions}}):
        try:
            CompiledSchema.from_crd(candidate, "v1")
        except SchemaError as exc:
            assert exc.causes
