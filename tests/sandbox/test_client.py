"""The official ``kubernetes`` Python client (what the operator's kube layer builds on)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from elastrain_sandbox.embedded import Sandbox
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory, widget_crd: str) -> Iterator[Sandbox]:
    with Sandbox(nodes=1, state_dir=tmp_path_factory.mktemp("client-sb"), agent=False) as box:
        box.store.create(
            "customresourcedefinitions.apiextensions.k8s.io", yaml.safe_load(widget_crd)
        )
        yield box


@pytest.fixture(scope="module")
def api(sb: Sandbox) -> Iterator[client.ApiClient]:
    c = config.new_client_from_config(config_file=str(sb.kubeconfig_path))
    try:
        yield c
    finally:
        c.close()


def test_core_crud_and_errors(api: client.ApiClient) -> None:
    core: Any = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="client-a")))
    cm = core.create_namespaced_config_map(
        "client-a", {"metadata": {"name": "c", "labels": {"k": "v"}}, "data": {"a": "1"}}
    )
    assert cm.metadata.uid and cm.metadata.resource_version
    patched = core.patch_namespaced_config_map("c", "client-a", {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    listed = core.list_namespaced_config_map("client-a", label_selector="k=v")
    assert [i.metadata.name for i in listed.items] == ["c"]
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("client-a", {"metadata": {"name": "c"}})
    assert err.value.status == 409
    stale = core.read_namespaced_config_map("c", "client-a")
    core.patch_namespaced_config_map("c", "client-a", {"data": {"c": "3"}})
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("c", "client-a", stale)
    assert err.value.status == 409
    core.delete_namespaced_config_map("c", "client-a")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("c", "client-a")
    assert err.value.status == 404


def test_watch_streams_changes_from_a_resource_version(api: client.ApiClient) -> None:
    core: Any = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="client-w")))
    rv = core.list_namespaced_config_map("client-w").metadata.resource_version
    core.create_namespaced_config_map("client-w", {"metadata": {"name": "x"}})
    core.patch_namespaced_config_map("x", "client-w", {"data": {"a": "1"}})
    core.delete_namespaced_config_map("x", "client-w")
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    for ev in w.stream(
        core.list_namespaced_config_map, "client-w", resource_version=rv, timeout_seconds=5
    ):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x")]


def test_custom_objects_with_status_subresource(
    api: client.ApiClient, widget: Callable[..., str]
) -> None:
    co: Any = client.CustomObjectsApi(api)
    body = yaml.safe_load(widget("w", replicas=2))
    created = co.create_namespaced_custom_object("example.test", "v1", "default", "widgets", body)
    assert created["spec"]["maxReplicas"] == 10
    co.patch_namespaced_custom_object_status(
        "example.test", "v1", "default", "widgets", "w", {"status": {"phase": "Up"}}
    )
    co.patch_namespaced_custom_object(
        "example.test", "v1", "default", "widgets", "w", {"spec": {"replicas": 4}}
    )
    got = co.get_namespaced_custom_object("example.test", "v1", "default", "widgets", "w")
    assert got["status"] == {"phase": "Up"} and got["spec"]["replicas"] == 4
    assert got["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(
            "example.test", "v1", "default", "widgets", "w", {"spec": {"replicas": -1}}
        )
    assert err.value.status == 422
    co.delete_namespaced_custom_object("example.test", "v1", "default", "widgets", "w")
    assert (
        co.list_namespaced_custom_object("example.test", "v1", "default", "widgets")["items"] == []
    )


def test_delete_with_uid_precondition(api: client.ApiClient) -> None:
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "pre"}})
    wrong = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid="00000000-0000-0000-0000-000000000000")
    )
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("pre", "default", body=wrong)
    assert err.value.status == 409
    uid = core.read_namespaced_config_map("pre", "default").metadata.uid
    core.delete_namespaced_config_map(
        "pre", "default", body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
    )


def test_kubeconfig_is_loadable(sb: Sandbox) -> None:
    assert Path(sb.kubeconfig_path).stat().st_mode & 0o777 == 0o600
