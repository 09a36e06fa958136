"""``json_type`` (the validator's type words) and ``json_kind`` (the keyword tables' words) are
one classification: they differ only for lists of strings and for values no decoder makes."""

from __future__ import annotations

from typing import Any

import pytest
from elastrain_sandbox.validation.keywords import json_kind, json_type


@pytest.mark.parametrize(
    ("value", "kind", "type_"),
    [
        (None, "null", "null"),
        (True, "boolean", "boolean"),
        (1, "integer", "integer"),
        (1.0, "number", "number"),
        ("s", "string", "string"),
        ([], "array of strings", "array"),
        (["a"], "array of strings", "array"),
        (["a", 1], "array", "array"),
        ({}, "object", "object"),
        (object(), "null", "object"),
        ((1,), "null", "tuple"),
    ],
)
def test_json_kind_and_type(value: Any, kind: str, type_: str) -> None:
    assert json_kind(value) == kind
    assert json_type(value) == type_
