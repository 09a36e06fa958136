"""The store's Kubernetes write semantics, through its Python API (no HTTP)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from elastrain_sandbox.apiserver.admission import BuiltinAdmission
from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.resources import ResourceType, ScaleSpec
from elastrain_sandbox.apiserver.store import PATCH_JSON, Store

WIDGETS = ResourceType(
    group="example.test",
    versions=("v1",),
    plural="widgets",
    kind="Widget",
    namespaced=True,
    status_subresource=True,
    scale=ScaleSpec(".spec.replicas", ".status.replicas"),
    custom=True,
)
GADGETS = ResourceType(
    group="example.test",
    versions=("v1",),
    plural="gadgets",
    kind="Gadget",
    namespaced=True,
    custom=True,
)


@pytest.fixture
def store() -> Store:
    s = Store(history=50)
    admission = BuiltinAdmission()
    for rt in s.resource_types():
        s.set_admitter(rt.key, admission)
    s.register(WIDGETS)
    s.register(GADGETS)
    s.create("namespaces", {"metadata": {"name": "default"}})
    return s


def pod(name: str, node: str | None = None, **labels: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "labels": labels}, "spec": spec}


def test_create_sets_metadata_and_increasing_resource_versions(store: Store) -> None:
    a = store.create("pods", pod("a"), "default")
    b = store.create("pods", pod("b"), "default")
    assert a["metadata"]["uid"] and a["metadata"]["creationTimestamp"].endswith("Z")
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    assert (
        a["spec"]["restartPolicy"] == "Always" and a["spec"]["schedulerName"] == "default-scheduler"
    )
    assert a["status"]["phase"] == "Pending"
    with pytest.raises(ApiError) as err:
        store.create("pods", pod("a"), "default")
    assert err.value.code == 409 and err.value.reason == "AlreadyExists"


def test_generate_name_and_missing_namespace(store: Store) -> None:
    obj = store.create("configmaps", {"metadata": {"generateName": "cfg-"}}, "default")
    assert obj["metadata"]["name"].startswith("cfg-") and len(obj["metadata"]["name"]) == 9
    with pytest.raises(ApiError) as err:
        store.create("configmaps", {"metadata": {"name": "x"}}, "nope")
    assert err.value.code == 404 and err.value.message == 'namespaces "nope" not found'


def test_stale_resource_version_conflicts(store: Store) -> None:
    obj = store.create("configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}}, "default")
    store.patch("configmaps", "c", {"data": {"a": "2"}}, namespace="default")
    obj["data"]["a"] = "3"
    with pytest.raises(ApiError) as err:
        store.update("configmaps", obj, "default")
    assert err.value.code == 409 and err.value.reason == "Conflict"


def test_status_subresource_split_and_generation(store: Store) -> None:
    w = store.create(
        "widgets",
        {"metadata": {"name": "w"}, "spec": {"replicas": 1}, "status": {"phase": "X"}},
        "default",
    )
    assert "status" not in w and w["metadata"]["generation"] == 1
    w = store.patch(
        "widgets",
        "w",
        {"status": {"phase": "Running"}, "spec": {"replicas": 9}},
        namespace="default",
        subresource="status",
    )
    assert w["status"] == {"phase": "Running"} and w["spec"]["replicas"] == 1
    assert w["metadata"]["generation"] == 1
    w = store.patch(
        "widgets", "w", {"spec": {"replicas": 3}, "status": {"phase": "Lost"}}, namespace="default"
    )
    assert w["spec"]["replicas"] == 3 and w["status"] == {"phase": "Running"}
    assert w["metadata"]["generation"] == 2
    w = store.patch("widgets", "w", {"metadata": {"labels": {"a": "b"}}}, namespace="default")
    assert w["metadata"]["generation"] == 2
    # Without a status subresource any non-metadata change bumps generation.
    g = store.create("gadgets", {"metadata": {"name": "g"}, "spec": {}}, "default")
    g = store.patch("gadgets", "g", {"status": {"x": 1}}, namespace="default")
    assert g["metadata"]["generation"] == 2 and g["status"] == {"x": 1}


def test_json_patch_test_op_failure_is_422(store: Store) -> None:
    store.create("configmaps", {"metadata": {"name": "c"}}, "default")
    with pytest.raises(ApiError) as err:
        store.patch(
            "configmaps",
            "c",
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
                {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
            ],
            PATCH_JSON,
            namespace="default",
        )
    assert err.value.code == 422
    assert "finalizers" not in store.get("configmaps", "c", "default")["metadata"]


def test_finalizers_hold_deletion_until_removed(store: Store) -> None:
    store.create(
        "configmaps", {"metadata": {"name": "c", "finalizers": ["example.test/f"]}}, "default"
    )
    res = store.delete("configmaps", "c", "default")
    assert not res.deleted and res.obj["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiError) as err:
        store.patch(
            "configmaps",
            "c",
            {"metadata": {"finalizers": ["example.test/f", "new"]}},
            namespace="default",
        )
    assert err.value.code == 422
    store.patch("configmaps", "c", {"metadata": {"finalizers": None}}, namespace="default")
    with pytest.raises(ApiError) as err:
        store.get("configmaps", "c", "default")
    assert err.value.code == 404


def test_uid_precondition(store: Store) -> None:
    store.create("configmaps", {"metadata": {"name": "c"}}, "default")
    with pytest.raises(ApiError) as err:
        store.delete("configmaps", "c", "default", preconditions={"uid": "not-it"})
    assert err.value.code == 409 and "Precondition failed" in err.value.message


def test_graceful_pod_deletion_waits_for_the_node_agent(store: Store) -> None:
    store.create("pods", pod("unbound"), "default")
    assert store.delete("pods", "unbound", "default").deleted  # no node: gone at once
    store.create("pods", pod("idle", node="node-0"), "default")
    assert store.delete("pods", "idle", "default").deleted  # nothing running: gone at once
    store.create("pods", pod("bound", node="node-0"), "default")
    running = {"name": "c", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
    store.patch(
        "pods",
        "bound",
        {"status": {"containerStatuses": [running]}},
        namespace="default",
        subresource="status",
    )
    res = store.delete("pods", "bound", "default")
    assert not res.deleted and res.obj["metadata"]["deletionGracePeriodSeconds"] == 30
    assert store.get("pods", "bound", "default")["metadata"]["deletionTimestamp"]
    # The agent, once the processes are gone, deletes with grace 0: final removal.
    assert store.delete("pods", "bound", "default", grace_period_seconds=0).deleted


def test_terminating_pod_held_by_finalizers_at_grace_0(store: Store) -> None:
    """A pod already at grace 0 waits for its finalizers: a further delete changes nothing,
    and removing the last finalizer completes the deletion."""
    p = pod("held", node="node-0")
    p["metadata"]["finalizers"] = ["example.test/hold"]
    store.create("pods", p, "default")
    marked = store.delete("pods", "held", "default").obj  # nothing running: grace 0 at once
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
    again = store.delete("pods", "held", "default", grace_period_seconds=0)
    assert not again.deleted
    assert again.obj["metadata"]["resourceVersion"] == marked["metadata"]["resourceVersion"]
    store.patch("pods", "held", {"metadata": {"finalizers": None}}, namespace="default")
    with pytest.raises(ApiError) as err:
        store.get("pods", "held", "default")
    assert err.value.code == 404


def test_delete_completes_a_deletion_whose_grace_period_is_over(store: Store) -> None:
    """As the API server's BeforeDelete: an object terminating at grace 0 (or none) with no
    finalizers left is removed by any delete, even one asking for grace 0 again (``0 < 0``).
    Only a failed final removal leaves such an object; it is planted here directly."""
    store.create("pods", pod("stuck", node="node-0"), "default")
    stored = store._data[("", "pods")]["default"]["stuck"]
    stored["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    stored["metadata"]["deletionGracePeriodSeconds"] = 0
    assert store.delete("pods", "stuck", "default", grace_period_seconds=0).deleted
    with pytest.raises(ApiError) as err:
        store.get("pods", "stuck", "default")
    assert err.value.code == 404


def test_label_selectors_and_pagination(store: Store) -> None:
    for i in range(7):
        store.create("pods", pod(f"p{i}", role="worker" if i % 2 else "ps", idx=str(i)), "default")
    assert [p["metadata"]["name"] for p in store.list("pods", label_selector="role=ps").items] == [
        "p0",
        "p2",
        "p4",
        "p6",
    ]
    assert len(store.list("pods", label_selector="role!=ps").items) == 3
    assert len(store.list("pods", label_selector="idx in (1,2,9)").items) == 2
    assert len(store.list("pods", label_selector="idx notin (1,2)").items) == 5
    assert len(store.list("pods", label_selector="role,!missing").items) == 7
    store.create("pods", pod("bound-a", node="node-a"), "default")
    store.create("pods", pod("bound-b", node="node-b"), "default")
    on_a = store.list("pods", field_selector="spec.nodeName=node-a").items
    assert [p["metadata"]["name"] for p in on_a] == ["bound-a"]
    unbound = store.list("pods", field_selector="spec.nodeName=", label_selector="role=ps").items
    assert [p["metadata"]["name"] for p in unbound] == ["p0", "p2", "p4", "p6"]
    assert len(store.list("pods", field_selector="spec.nodeName!=node-a").items) == 8
    names: list[str] = []
    token = None
    while True:
        page = store.list("pods", "default", limit=3, continue_token=token)
        names += [p["metadata"]["name"] for p in page.items]
        token = page.continue_token
        if not token:
            break
    assert names == ["bound-a", "bound-b", *[f"p{i}" for i in range(7)]]


def test_watch_resumes_from_a_version_and_410s_beyond_history() -> None:
    async def run() -> None:
        store = Store(history=5)
        store.create("namespaces", {"metadata": {"name": "default"}})
        first = store.create("configmaps", {"metadata": {"name": "a"}}, "default")
        store.create("configmaps", {"metadata": {"name": "b"}}, "default")
        watch = store.watch(
            "configmaps", "default", resource_version=first["metadata"]["resourceVersion"]
        )
        ev = await watch.next(5)
        assert ev is not None and ev.type == "ADDED" and ev.obj["metadata"]["name"] == "b"
        store.delete("configmaps", "a", "default")
        ev = await watch.next(5)
        assert ev is not None and ev.type == "DELETED" and ev.obj["metadata"]["name"] == "a"
        watch.close()
        for i in range(10):
            store.create("configmaps", {"metadata": {"name": f"x{i}"}}, "default")
        with pytest.raises(ApiError) as err:
            store.watch("configmaps", resource_version=first["metadata"]["resourceVersion"])
        assert err.value.code == 410

    asyncio.run(run())


def test_watch_with_selector_sees_objects_leave_as_deleted() -> None:
    async def run() -> None:
        store = Store()
        store.create("namespaces", {"metadata": {"name": "default"}})
        store.create("configmaps", {"metadata": {"name": "a", "labels": {"k": "v"}}}, "default")
        watch = store.watch("configmaps", label_selector="k=v")
        ev = await watch.next(5)
        assert ev is not None and ev.type == "ADDED"
        store.patch(
            "configmaps", "a", {"metadata": {"labels": {"k": "other"}}}, namespace="default"
        )
        ev = await watch.next(5)
        assert ev is not None and ev.type == "DELETED"
        watch.close()

    asyncio.run(run())


def test_pagination_serves_later_pages_from_the_first_pages_snapshot(store: Store) -> None:
    for name in ("a", "b", "c", "d"):
        store.create("configmaps", {"metadata": {"name": name}, "data": {"v": "old"}}, "default")
    first = store.list("configmaps", "default", limit=2)
    assert [o["metadata"]["name"] for o in first.items] == ["a", "b"]
    store.delete("configmaps", "c", "default")
    store.patch("configmaps", "d", {"data": {"v": "new"}}, namespace="default")
    store.create("configmaps", {"metadata": {"name": "e"}}, "default")
    rest = store.list("configmaps", "default", limit=10, continue_token=first.continue_token)
    assert [(o["metadata"]["name"], o["data"]["v"]) for o in rest.items] == [
        ("c", "old"),
        ("d", "old"),
    ]
    assert rest.resource_version == first.resource_version
