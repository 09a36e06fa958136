"""The kube layer against a real API server (the sandbox): the semantics the planner relies on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from elastrain.api.kinds import EVENT, POD, POD_GROUP, TRAINING_JOB
from elastrain.kube import discovery, errors, resources
from elastrain.kube.client import Kube, load_api_client
from elastrain.kube.events import EventRecorder, InvolvedObject
from elastrain.kube.ratelimit import TokenBucket
from elastrain_sandbox.embedded import Sandbox
from sandbox_fixtures import Kubectl

T = TypeVar("T")
CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: trainingjobs.elastrain.dev}
spec:
  group: elastrain.dev
  scope: Namespaced
  names: {kind: TrainingJob, plural: trainingjobs, singular: trainingjob}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"""


@pytest.fixture(scope="module")
def kube(shared_sandbox: Sandbox) -> Iterator[Kube]:
    # A minimal CRD with the same group/plural: this module tests the client, not the schema.
    Kubectl(shared_sandbox)("apply", "-f", "-", input=CRD)
    client = Kube(
        load_api_client(kubeconfig=str(shared_sandbox.kubeconfig_path)), TokenBucket(50, 50)
    )
    try:
        yield client
    finally:
        client.close()


def run(coro: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await coro

    return asyncio.run(wrapper())


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["true"]}]},
    }


def test_create_is_idempotent_and_delete_honours_the_uid(kube: Kube) -> None:
    assert run(resources.create(kube, pod("k-create"))) is True
    assert run(resources.create(kube, pod("k-create"))) is False  # 409 AlreadyExists = success
    path = POD.object_path("default", "k-create")
    uid = run(kube.request("GET", path))["metadata"]["uid"]
    # A stale uid must not delete the namesake (409 precondition = "the one meant is gone").
    assert run(resources.delete(kube, "Pod", "default", "k-create", "not-" + uid)) is False
    assert run(kube.request("GET", path))["metadata"]["uid"] == uid
    assert run(resources.delete(kube, "Pod", "default", "k-create", uid)) is True
    assert run(resources.delete(kube, "Pod", "default", "no-such-pod", None)) is False


def test_invalid_objects_raise_invalid_with_the_server_message(kube: Kube) -> None:
    bad = pod("k-invalid")
    bad["spec"]["containers"][0]["name"] = "Not_A_DNS_Label"
    with pytest.raises(errors.Invalid) as caught:
        run(resources.create(kube, bad))
    assert "Not_A_DNS_Label" in caught.value.message


def test_status_patch_is_guarded_by_resource_version(kube: Kube) -> None:
    job = {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "k-status", "namespace": "default"},
        "spec": {},
    }
    created = run(kube.request("POST", TRAINING_JOB.collection_path("default"), body=job))
    rv = created["metadata"]["resourceVersion"]
    first = {"phase": "Created", "startTime": "2026-01-01T00:00:00Z"}
    updated = run(resources.patch_job_status(kube, "default", "k-status", rv, first))
    assert updated["status"] == first
    # A second write computed from the old version is refused.
    with pytest.raises(errors.Conflict):
        run(resources.patch_job_status(kube, "default", "k-status", rv, {"phase": "Running"}))
    # The merge patch of a status that dropped a key removes it on the server.
    new_rv = updated["metadata"]["resourceVersion"]
    patch = resources.merge_patch(first, {"phase": "Suspended"})
    final = run(resources.patch_job_status(kube, "default", "k-status", new_rv, patch))
    assert final["status"] == {"phase": "Suspended"}


def test_discovery_tells_served_resources(kube: Kube) -> None:
    assert run(discovery.serves(kube, TRAINING_JOB))
    assert run(discovery.serves(kube, POD))  # the core group: /api/v1, not /apis/...
    assert not run(discovery.serves(kube, POD_GROUP))
    assert not run(discovery.CrdProbe(kube, POD_GROUP).served())
    assert run(discovery.CrdProbe(kube, TRAINING_JOB).served())


def test_repeated_events_are_aggregated(kube: Kube) -> None:
    recorder = EventRecorder(kube)
    involved = InvolvedObject("v1", "Pod", "default", "k-events", "uid-1")

    async def twice() -> None:
        await recorder.record(involved, "Warning", "FailedCreatePod", "boom")
        await recorder.record(involved, "Warning", "FailedCreatePod", "boom")
        await recorder.record(involved, "Normal", "Other", "fine")

    run(twice())
    listing = run(kube.request("GET", EVENT.collection_path("default")))
    mine = [e for e in listing["items"] if e["involvedObject"]["name"] == "k-events"]
    by_reason = {e["reason"]: e for e in mine}
    assert len(mine) == 2
    failed = by_reason["FailedCreatePod"]
    assert failed["count"] == 2
    assert failed["type"] == "Warning"
    assert failed["source"]["component"] == "elastrain-operator"
    assert failed["involvedObject"]["uid"] == "uid-1"
    assert failed["firstTimestamp"] <= failed["lastTimestamp"]


def test_unreachable_server_is_transient(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    client = Kube(load_api_client(kubeconfig=str(kubeconfig)), TokenBucket(5, 5))
    try:
        with pytest.raises(errors.Transient):
            run(client.request("GET", "/api/v1/namespaces"))
    finally:
        client.close()
