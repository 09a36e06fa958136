"""The three patch formats, on their own (the kubectl tests cover them end to end)."""

from __future__ import annotations

import pytest
from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.patch import json_patch, merge_patch, strategic_merge_patch


def test_merge_patch_follows_rfc7386() -> None:
    target = {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}
    assert merge_patch(target, {"a": None, "b": {"c": 9}, "l": [3]}) == {
        "b": {"c": 9, "d": 3},
        "l": [3],
    }
    assert target == {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}  # input untouched


def test_json_patch_operations_and_failures() -> None:
    doc = {"metadata": {"name": "x", "finalizers": ["a"]}, "spec": {"list": [1, 3]}}
    out = json_patch(
        doc,
        [
            {"op": "test", "path": "/metadata/name", "value": "x"},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "b"},
            {"op": "add", "path": "/spec/list/1", "value": 2},
            {"op": "replace", "path": "/spec/list/0", "value": 0},
            {"op": "copy", "from": "/metadata/name", "path": "/spec/name"},
            {"op": "move", "from": "/spec/name", "path": "/spec/moved"},
            {"op": "remove", "path": "/metadata/finalizers/0"},
            {"op": "add", "path": "/metadata/labels~1x", "value": "escaped"},
        ],
    )
    assert out["metadata"] == {"name": "x", "finalizers": ["b"], "labels/x": "escaped"}
    assert out["spec"] == {"list": [0, 2, 3], "moved": "x"}
    for bad in (
        [{"op": "test", "path": "/metadata/name", "value": "y"}],
        [{"op": "remove", "path": "/nope"}],
        [{"op": "replace", "path": "/spec/absent", "value": 1}],
        [{"op": "add", "path": "/spec/list/9", "value": 1}],
    ):
        with pytest.raises(ApiError) as err:
            json_patch(doc, bad)
        assert err.value.code == 422
    with pytest.raises(ApiError) as err:
        json_patch(doc, [{"op": "frobnicate", "path": "/a"}])
    assert err.value.code == 400


def test_strategic_merge_uses_merge_keys_and_directives() -> None:
    pod = {
        "metadata": {"finalizers": ["a"], "labels": {"x": "1"}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "i:1",
                    "env": [{"name": "A", "value": "1"}],
                    "ports": [{"containerPort": 80}],
                },
                {"name": "side", "image": "s:1"},
            ],
            "volumes": [{"name": "v1"}, {"name": "v2"}],
            "tolerations": [{"key": "t"}],
        },
    }
    out = strategic_merge_patch(
        pod,
        {
            "metadata": {"finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a"]},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "env": [{"name": "B", "value": "2"}],
                        "ports": [{"containerPort": 81}],
                    },
                    {"name": "side", "$patch": "delete"},
                ],
                "volumes": [{"name": "v3"}, {"$patch": "replace"}],
                "tolerations": [{"key": "u"}],
            },
        },
    )
    main = out["spec"]["containers"]
    assert [c["name"] for c in main] == ["main"]
    assert main[0]["image"] == "i:1"
    assert main[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert main[0]["ports"] == [{"containerPort": 80}, {"containerPort": 81}]
    assert out["spec"]["volumes"] == [{"name": "v3"}]  # $patch: replace on the list
    assert out["spec"]["tolerations"] == [{"key": "u"}]  # no merge key: atomic
    assert out["metadata"]["finalizers"] == ["b"]
    replaced = strategic_merge_patch(pod, {"metadata": {"$patch": "replace", "name": "n"}})
    assert replaced["metadata"] == {"name": "n"}
    retained = strategic_merge_patch(
        {"spec": {"a": 1, "b": 2}}, {"spec": {"$retainKeys": ["b"], "b": 3}}
    )
    assert retained == {"spec": {"b": 3}}
