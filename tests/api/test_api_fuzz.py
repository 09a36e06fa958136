"""Property tests: the parser never crashes on any input, and it accepts exactly what the CRD
(schema + CEL, in the sandbox's validator) accepts, for random edits of valid jobs."""

from __future__ import annotations

import copy
from typing import Any

from api_cases import FUZZ_FIELDS, base_job, set_path
from elastrain.api import constants as c
from elastrain.api.errors import SpecInvalid
from elastrain.api.parse import parse_training_job
from elastrain.api.schema import crd
from elastrain_sandbox.validation import CompiledSchema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

Obj = dict[str, Any]
SCHEMA = CompiledSchema.from_crd(crd(), c.VERSION)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.sampled_from(["", "auto", "x", "1"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


def _parses(obj: Obj) -> bool:
    try:
        parse_training_job(obj)
    except SpecInvalid as exc:
        assert exc.errors
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(sorted(FUZZ_FIELDS)), st.data()), max_size=4), st.data())
def test_parser_agrees_with_the_crd(edits: list[tuple[str, Any]], data: st.DataObject) -> None:
    obj = base_job()
    for path, _ in edits:
        set_path(obj, path, data.draw(FUZZ_FIELDS[path], label=path))
    decoded = {**SCHEMA.prepare(copy.deepcopy(obj)), "metadata": obj["metadata"]}
    causes = SCHEMA.validate(decoded)
    assert _parses(obj) == (causes == []), [str(x) for x in causes]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(FUZZ_FIELDS)), json_values), max_size=4))
def test_parser_never_crashes(edits: list[tuple[str, Any]]) -> None:
    obj = base_job()
    for path, value in edits:
        set_path(obj, path, value)
    _parses(obj)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_parser_never_crashes_on_arbitrary_json(value: Any) -> None:
    for obj in (value, {"metadata": {"name": "a"}, "spec": value}):
        try:
            parse_training_job(obj)
        except SpecInvalid as exc:
            assert exc.errors
