"""Property tests: the parser never crashes on any input, and it accepts exactly what the CRD
(schema + CEL, in the sandbox's validator) accepts, for random edits of valid jobs."""

from __future__ import annotations

import copy
from typing import Any

from api_cases import ELASTIC, base_job, template
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

# Fields whose values the API and the parser both constrain, with values near their limits.
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "spec.replicaSpecs.worker.replicas": st.integers(-1, 10000),
    "spec.replicaSpecs.worker.restartPolicy": st.sampled_from(["Never", "ExitCode", "Sometimes"]),
    "spec.replicaSpecs.worker.gpus": st.integers(-1, 65),
    "spec.replicaSpecs.ps": st.sampled_from(
        [None, {"template": template()}, {"replicas": 0, "template": template()}]
    ),
    "spec.replicaSpecs.chief": st.sampled_from(
        [None, {"template": template()}, {"replicas": 2, "template": template()}]
    ),
    "spec.elasticPolicy": st.sampled_from(
        [None, ELASTIC, {"minReplicas": 3, "maxReplicas": 2}, {"minReplicas": 2, "maxReplicas": 8}]
    ),
    "spec.nprocPerNode": st.sampled_from([None, "auto", "two", 0, 1, 8]),
    "spec.successPolicy": st.sampled_from([None, "AllWorkers", "Chief", "Any"]),
    "spec.runPolicy.backoffLimit": st.integers(-1, 1001),
    "spec.runPolicy.cleanPodPolicy": st.sampled_from(["All", "Running", "None", "Some"]),
    "spec.runPolicy.retryableExitCodes": st.sampled_from([None, [137], [0], [137, 137], [256]]),
    "spec.runPolicy.schedulingPolicy": st.sampled_from(
        [None, {"minAvailable": 1}, {"minAvailable": 3}, {"queue": "Q"}]
    ),
    "spec.runPolicy.restartBackoff": st.sampled_from(
        [None, {"initialSeconds": 5, "maxSeconds": 1}, {"initialSeconds": 0}]
    ),
    "metadata.name": st.sampled_from(["ok", "x" * 48, "x" * 49, "Bad", "a-", "a1"]),
}


def _set(obj: Obj, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = obj
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = copy.deepcopy(value)


def _parses(obj: Obj) -> bool:
    try:
        parse_training_job(obj)
    except SpecInvalid as exc:
        assert exc.errors
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(sorted(FIELDS)), st.data()), max_size=4), st.data())
def test_parser_agrees_with_the_crd(edits: list[tuple[str, Any]], data: st.DataObject) -> None:
    obj = base_job()
    for path, _ in edits:
        _set(obj, path, data.draw(FIELDS[path], label=path))
    decoded = {**SCHEMA.prepare(copy.deepcopy(obj)), "metadata": obj["metadata"]}
    causes = SCHEMA.validate(decoded)
    assert _parses(obj) == (causes == []), [str(x) for x in causes]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(FIELDS)), json_values), max_size=4))
def test_parser_never_crashes(edits: list[tuple[str, Any]]) -> None:
    obj = base_job()
    for path, value in edits:
        _set(obj, path, value)
    _parses(obj)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_parser_never_crashes_on_arbitrary_json(value: Any) -> None:
    for obj in (value, {"metadata": {"name": "a"}, "spec": value}):
        try:
            parse_training_job(obj)
        except SpecInvalid as exc:
            assert exc.errors
