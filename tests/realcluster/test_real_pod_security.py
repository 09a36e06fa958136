"""The restricted Pod Security Standard, enforced by the real API server's PodSecurity admission
rather than asserted from YAML: every pod the operator builds from the shipped examples, and a
bare template's pods, and the chart's operator pod are admitted into a namespace that enforces
``restricted``; a template that asks for root is refused there, which shows the check bites.

Pods are sent with ``dryRun=All``: admission runs in full, nothing is stored or scheduled."""

from __future__ import annotations

import copy
import sys

import chart_rbac
import pytest
from elastrain.api.parse import parse_training_job
from elastrain.planner.children import build_pod_spec
from real_control_plane import REPO, Obj, RealCluster
from sandbox_fixtures import wait_for

sys.path.insert(0, str(REPO / "tests" / "api"))
from api_cases import base_job, example_jobs

pytestmark = [pytest.mark.slow, pytest.mark.real]

NS = "restricted-pods"
DRY_RUN = {"dryRun": "All", "fieldValidation": "Strict"}


@pytest.fixture(scope="module")
def restricted(real_cluster: RealCluster) -> RealCluster:
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": labels}}
    resp = real_cluster.api.call("POST", "/api/v1/namespaces", body)
    assert resp.status in (201, 409), resp.body
    # The ServiceAccount controller adds ``default`` a moment later; pods are refused until then.
    wait_for(
        lambda: real_cluster.api.get(f"/api/v1/namespaces/{NS}/serviceaccounts/default"),
        timeout=30,
        what=f"the default ServiceAccount of {NS}",
    )
    return real_cluster


def _pods(job_obj: Obj) -> list[Obj]:
    """One pod per role, as the operator would create it."""
    obj = copy.deepcopy(job_obj)
    uid = "0f0e0d0c-0000-4000-8000-000000000001"
    obj["metadata"] = {**obj["metadata"], "namespace": NS, "uid": uid}
    job = parse_training_job(obj)
    return [build_pod_spec(job, role, 0, gang=False) for role in job.spec.replica_specs]


def _admit(cluster: RealCluster, pod: Obj) -> tuple[int, Obj]:
    resp = cluster.api.call("POST", f"/api/v1/namespaces/{NS}/pods", pod, query=DRY_RUN)
    return resp.status, resp.body


@pytest.mark.parametrize(("name", "obj"), example_jobs())
def test_the_examples_pods_are_admitted(restricted: RealCluster, name: str, obj: Obj) -> None:
    for pod in _pods(obj):
        status, body = _admit(restricted, pod)
        assert status == 201, f"{name}: {pod['metadata']['name']}: {body.get('message')}"


def test_a_bare_templates_pods_are_admitted_by_default(restricted: RealCluster) -> None:
    """The template says nothing about security: the operator's defaults make it restricted."""
    (pod,) = _pods(base_job())
    assert "securityContext" not in base_job()["spec"]["replicaSpecs"]["worker"]["template"]["spec"]
    status, body = _admit(restricted, pod)
    assert status == 201, body.get("message")


def test_a_template_that_asks_for_root_is_refused(restricted: RealCluster) -> None:
    job = base_job()
    job["spec"]["replicaSpecs"]["worker"]["template"]["spec"]["securityContext"] = {"runAsUser": 0}
    (pod,) = _pods(job)
    status, body = _admit(restricted, pod)
    assert status == 403, body
    assert "violates PodSecurity" in body["message"] and "runAsUser=0" in body["message"]


def test_the_charts_operator_pod_is_admitted(restricted: RealCluster) -> None:
    docs = chart_rbac.render("elastrain", NS)
    (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
    template = deploy["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "elastrain-operator", "labels": template["metadata"]["labels"]},
        "spec": {**template["spec"], "serviceAccountName": "default"},
    }
    status, body = _admit(restricted, pod)
    assert status == 201, body.get("message")
