"""The 422 Status body: what kubectl prints as ``The TrainingJob "x" is invalid: ...``."""

from __future__ import annotations

from elastrain_sandbox.validation import FieldCause, invalid_status
from elastrain_sandbox.validation.errors import go_float
from schema_helpers import obj, spec_schema


def test_single_cause_status_matches_the_apiserver_shape() -> None:
    causes = spec_schema({"replicas": {"type": "integer", "minimum": 0}}).validate(
        obj({"replicas": -1})
    )
    assert invalid_status("TrainingJob", "elastrain.dev", "x", causes) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'TrainingJob.elastrain.dev "x" is invalid: spec.replicas: Invalid value: -1: '
        "spec.replicas in body should be greater than or equal to 0",
        "reason": "Invalid",
        "details": {
            "name": "x",
            "group": "elastrain.dev",
            "kind": "TrainingJob",
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": "Invalid value: -1: "
                    "spec.replicas in body should be greater than or equal to 0",
                    "field": "spec.replicas",
                }
            ],
        },
        "code": 422,
    }


def test_several_causes_are_bracketed_and_deduplicated_in_the_message() -> None:
    a = FieldCause("spec.a", "FieldValueRequired", "Required value")
    b = FieldCause("spec.b", "FieldValueRequired", "Required value")
    status = invalid_status("Widget", "example.dev", "w", [a, b, a])
    assert (
        status["message"]
        == 'Widget.example.dev "w" is invalid: [spec.a: Required value, spec.b: Required value]'
    )
    assert len(status["details"]["causes"]) == 3


def test_core_group_and_no_causes() -> None:
    assert invalid_status("Pod", "", "p", [])["message"] == 'Pod "p" is invalid'


def test_go_float_formatting_matches_percent_v() -> None:
    assert [go_float(v) for v in (0.5, 2.0, 1e6, 1234567.0, 1e-05, 0.0001, -2.5)] == [
        "0.5",
        "2",
        "1e+06",
        "1.234567e+06",
        "1e-05",
        "0.0001",
        "-2.5",
    ]
