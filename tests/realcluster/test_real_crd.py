"""The TrainingJob CRD on a real kube-apiserver: accepted as ``kubectl apply -f crds/`` sends it
(CEL compiled and costed by the real estimator), and the whole bad-spec corpus that the
embedded validator and the parser are held to is refused by it, naming the same fields."""

from __future__ import annotations

import copy
import sys

import pytest
from real_control_plane import REPO, Obj, RealCluster

sys.path.insert(0, str(REPO / "tests" / "api"))
from api_cases import BAD, GOOD, UPDATES, Bad, Good, Update, example_jobs

pytestmark = [pytest.mark.slow, pytest.mark.real]

TJ_PATH = "/apis/elastrain.dev/v1alpha1/namespaces/default/trainingjobs"
# kubectl's default: unknown and duplicate fields are errors, not warnings.
CREATE = {"fieldValidation": "Strict", "dryRun": "All"}


@pytest.fixture(scope="module")
def crd_installed(real_cluster: RealCluster) -> RealCluster:
    real_cluster.kubectl("apply", "-f", str(REPO / "crds"))
    crd = "crd/trainingjobs.elastrain.dev"
    real_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", crd)
    return real_cluster


def _named(obj: Obj, name: str) -> Obj:
    out = copy.deepcopy(obj)
    out["metadata"]["name"] = name
    out["metadata"].pop("namespace", None)
    return out


def test_crd_apply_is_accepted_and_idempotent(crd_installed: RealCluster) -> None:
    """A second apply (an update of the CRD: CEL re-costed against the stored version) too."""
    out = crd_installed.kubectl("apply", "-f", str(REPO / "crds")).stdout
    assert "trainingjobs.elastrain.dev" in out


@pytest.mark.parametrize(("name", "obj"), example_jobs())
def test_examples_are_accepted(crd_installed: RealCluster, name: str, obj: Obj) -> None:
    del name  # a test id ("ddp.yaml:ddp"), not an object name
    resp = crd_installed.api.call(
        "POST", TJ_PATH, _named(obj, obj["metadata"]["name"]), query=CREATE
    )
    assert resp.status == 201, resp.body


@pytest.mark.parametrize("case", GOOD, ids=[g.id for g in GOOD])
def test_good_spec_is_accepted(crd_installed: RealCluster, case: Good) -> None:
    resp = crd_installed.api.call("POST", TJ_PATH, case.build(), query=CREATE)
    assert resp.status == 201, resp.body


@pytest.mark.parametrize("case", BAD, ids=[b.id for b in BAD])
def test_bad_spec_is_refused_naming_the_field(crd_installed: RealCluster, case: Bad) -> None:
    resp = crd_installed.api.call("POST", TJ_PATH, case.build(), query=CREATE)
    if not case.crd:
        # Only the operator checks this (docs/api.md): the CRD must let it through.
        assert resp.status == 201, resp.body
        return
    # 422 (Invalid) for schema and CEL errors; 400 (BadRequest) when strict decoding meets a
    # field the schema prunes, which includes an object given where a list is declared.
    assert resp.status in (400, 422), resp.body
    causes = (resp.body.get("details") or {}).get("causes") or []
    text = resp.message + " ".join(f"{c.get('field', '')} {c.get('message', '')}" for c in causes)
    assert case.field in text, (text, resp.body)


@pytest.mark.parametrize("case", UPDATES, ids=[u.id for u in UPDATES])
def test_update_rules(crd_installed: RealCluster, case: Update) -> None:
    old, new = case.build()
    name = f"upd-{abs(hash(case.id)) % 10**8}"
    old = _named(old, name)
    api = crd_installed.api
    api.call("DELETE", f"{TJ_PATH}/{name}")
    created = api.call("POST", TJ_PATH, old, query={"fieldValidation": "Strict"})
    assert created.status == 201, created.body
    try:
        new = _named(new, name)
        new["metadata"]["resourceVersion"] = created.body["metadata"]["resourceVersion"]
        resp = api.call("PUT", f"{TJ_PATH}/{name}", new, query=CREATE)
        if case.field is None:
            assert resp.status == 200, resp.body
        else:
            assert resp.status == 422, resp.body
            assert case.field in str(resp.body), resp.body
    finally:
        api.call("DELETE", f"{TJ_PATH}/{name}")


def test_printer_columns_show_through_kubectl(crd_installed: RealCluster) -> None:
    kubectl = crd_installed.kubectl
    kubectl("apply", "-n", "default", "-f", str(REPO / "examples" / "elastic-ddp.yaml"))
    try:
        header = kubectl("get", "tj", "-n", "default", "-o", "wide").stdout.splitlines()[0]
        assert header.split() == [
            "NAME",
            "PHASE",
            "READY",
            "WORKERS",
            "RESTARTS",
            "PROGRESS%",
            "LOSS",
            "ETA",
            "STEP",
            "MIN",
            "MAX",
            "AGE",
        ]
        kubectl("scale", "-n", "default", "tj", "elastic-ddp", "--replicas=4")
        refused = kubectl(
            "scale", "-n", "default", "tj", "elastic-ddp", "--replicas=5", check=False
        )
        assert refused.returncode != 0
        assert "spec.replicaSpecs.worker.replicas must be between" in refused.stderr
    finally:
        kubectl(
            "delete",
            "-n",
            "default",
            "-f",
            str(REPO / "examples" / "elastic-ddp.yaml"),
            "--wait=false",
        )
