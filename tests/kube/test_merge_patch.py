"""The status merge patch turns the old status into exactly the planner's new one."""

from __future__ import annotations

from typing import Any

from elastrain.kube.resources import merge_patch
from hypothesis import given
from hypothesis import strategies as st


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 section 2, as the API server applies it."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def test_removed_keys_become_null_and_unchanged_keys_are_left_out() -> None:
    old = {"phase": "Running", "startTime": "t0", "replicaStatuses": {"worker": {"active": 2}}}
    new = {"phase": "Running", "replicaStatuses": {"worker": {"active": 1, "failed": 1}}}
    assert merge_patch(old, new) == {
        "startTime": None,
        "replicaStatuses": {"worker": {"active": 1, "failed": 1}},
    }


def test_lists_are_replaced_whole() -> None:
    old = {"conditions": [{"type": "Created"}]}
    new = {"conditions": [{"type": "Created"}, {"type": "Running"}]}
    assert merge_patch(old, new) == new


def test_identical_status_gives_an_empty_patch() -> None:
    status = {"phase": "Created", "conditions": [{"type": "Created", "status": "True"}]}
    assert merge_patch(status, dict(status)) == {}


# JSON values without nulls (a status never carries null on purpose).
scalars = st.one_of(st.booleans(), st.integers(), st.text(max_size=3))
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abcd"), inner, max_size=4)
    ),
    max_leaves=12,
)
objects = st.dictionaries(st.sampled_from("abcdef"), json_values, max_size=5)


@given(objects, objects)
def test_applying_the_patch_to_old_yields_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert apply_merge_patch(old, merge_patch(old, new)) == new
