"""The kind table and the ownership rule: the facts every layer takes from ``elastrain.api``."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from elastrain.api.kinds import (
    CHILD_KINDS,
    EVENT,
    LABEL_POD_GROUP,
    POD,
    POD_GROUP,
    SERVICE,
    TRAINING_JOB,
    by_kind,
)
from elastrain.api.ownership import JobOwner, owning_job
from elastrain.planner.observe import controller_uid
from hypothesis import given
from hypothesis import strategies as st


def test_core_and_group_kinds_have_the_api_servers_paths() -> None:
    assert POD.api_version == "v1"
    assert POD.object_path("team-a", "mnist-worker-0") == (
        "/api/v1/namespaces/team-a/pods/mnist-worker-0"
    )
    assert SERVICE.collection_path("team-a") == "/api/v1/namespaces/team-a/services"
    assert EVENT.collection_path("team-a") == "/api/v1/namespaces/team-a/events"
    assert POD_GROUP.api_version == "scheduling.x-k8s.io/v1alpha1"
    assert POD_GROUP.api_prefix == "/apis/scheduling.x-k8s.io/v1alpha1"
    assert POD_GROUP.crd_name == "podgroups.scheduling.x-k8s.io"
    assert TRAINING_JOB.api_version == "elastrain.dev/v1alpha1"
    assert TRAINING_JOB.object_path("a b", "x/y") == (
        "/apis/elastrain.dev/v1alpha1/namespaces/a%20b/trainingjobs/x%2Fy"
    )
    assert LABEL_POD_GROUP == "scheduling.x-k8s.io/pod-group"


def test_selectors_are_kopfs_positional_resource_arguments() -> None:
    assert POD.selector == ("v1", "pods")
    assert POD_GROUP.selector == ("scheduling.x-k8s.io", "v1alpha1", "podgroups")
    assert [k.kind for k in CHILD_KINDS] == ["Pod", "Service", "PodGroup"]


def test_every_kind_the_planner_names_is_in_the_table() -> None:
    for kind in ("Pod", "Service", "PodGroup", "TrainingJob", "Event"):
        assert by_kind(kind).kind == kind
    with pytest.raises(KeyError):
        by_kind("Deployment")


@pytest.mark.parametrize(
    ("api_version", "same_group"),
    [
        ("elastrain.dev/v1alpha1", True),
        ("elastrain.dev/v1", True),  # any version of our group
        ("elastrain.dev", False),
        ("other.dev/v1alpha1", False),
        ("v1", False),
        (None, False),
        (3, False),
    ],
)
def test_group_match_ignores_only_the_version(api_version: object, same_group: bool) -> None:
    assert TRAINING_JOB.in_group_of(api_version) is same_group


def ours() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "mnist-worker-0",
            "labels": {"elastrain.dev/job-name": "mnist"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "cm"},
                {
                    "apiVersion": "elastrain.dev/v1alpha1",
                    "kind": "TrainingJob",
                    "name": "mnist",
                    "uid": "job-uid",
                    "controller": True,
                },
            ],
        }
    }


def test_a_child_is_owned_by_the_job_named_by_label_and_controller_reference() -> None:
    assert owning_job(ours()) == JobOwner("mnist", "job-uid")
    assert controller_uid(ours()) == "job-uid"  # the planner decides by the same rule


def _spoil(path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(ours())
    ref = obj["metadata"]["ownerReferences"][1]
    if path == "label":
        obj["metadata"]["labels"]["elastrain.dev/job-name"] = value
    else:
        ref[path] = value
    return obj


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("label", "other"),  # a stranger copying our label names another job
        ("label", ""),
        ("controller", False),  # an owner, but not the controller
        ("kind", "Job"),
        ("apiVersion", "batch/v1"),
        ("name", "other"),
    ],
)
def test_anything_less_is_not_ours(path: str, value: Any) -> None:
    spoiled = _spoil(path, value)
    assert owning_job(spoiled) is None
    assert controller_uid(spoiled) is None


def test_a_namesake_of_an_earlier_job_is_owned_by_that_job() -> None:
    # Same name, other uid: keyed to the same job (it blocks the name), never counted as ours.
    assert owning_job(_spoil("uid", "earlier-job")) == JobOwner("mnist", "earlier-job")
    assert owning_job(_spoil("uid", 7)) == JobOwner("mnist", None)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=10,
)


@given(
    meta=st.fixed_dictionaries(
        {},
        optional={
            "labels": JSON | st.just({"elastrain.dev/job-name": "mnist"}),
            "ownerReferences": JSON
            | st.lists(JSON | st.just(ours()["metadata"]["ownerReferences"][1]), max_size=2),
        },
    )
    | JSON
)
def test_ownership_never_raises_on_odd_objects(meta: Any) -> None:
    owner = owning_job({"metadata": meta})
    assert owner is None or isinstance(owner, JobOwner)
