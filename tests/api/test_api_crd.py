"""The generated CRD: in sync on disk, equal to the Python schema, consistent with ``types.py``,
valid as a Kubernetes object, and every CEL rule compiles and names a real field."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate
import pytest
import yaml
from api_cases import REPO
from elastrain.api import constants as c
from elastrain.api.schema import crd
from elastrain.api.types import (
    DEFAULT_REPLICAS,
    DEFAULT_RESTART_POLICY,
    CleanPodPolicy,
    ElasticPolicy,
    RestartBackoff,
    RestartPolicy,
    RunPolicy,
    SuccessPolicy,
)
from elastrain_dev import gen_crds as crdgen

Schema = dict[str, Any]


def _spec_schema() -> Schema:
    schema: Schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema["properties"]["spec"]


def _walk(node: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}.*")


def _gen(root: Path, check: bool) -> int:
    return crdgen.run(argparse.Namespace(root=root, check=check))


def test_files_on_disk_match_the_schema() -> None:
    assert _gen(REPO, check=True) == 0, "run `make crds`"
    text = crdgen.render()
    for rel in crdgen.TARGETS:
        assert (REPO / rel).read_text() == text
    assert yaml.safe_load(text) == crd()


def test_check_mode_detects_stale_and_missing_files(tmp_path: Path) -> None:
    for rel in crdgen.TARGETS:
        (tmp_path / rel).parent.mkdir(parents=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    assert _gen(tmp_path, check=True) == 0
    chart_copy = tmp_path / crdgen.TARGETS[1]
    chart_copy.write_text(chart_copy.read_text().replace("minimum: 1", "minimum: 2", 1))
    (tmp_path / crdgen.TARGETS[0]).unlink()
    assert _gen(tmp_path, check=True) == 1
    assert not (tmp_path / crdgen.TARGETS[0]).exists()
    assert _gen(tmp_path, check=False) == 0
    assert _gen(tmp_path, check=True) == 0


def test_crd_is_a_valid_kubernetes_object() -> None:
    version = kubernetes_validate.latest_version()
    kubernetes_validate.validate(crd(), version, strict=True)


def test_names_subresources_and_columns() -> None:
    spec = crd()["spec"]
    assert spec["names"]["shortNames"] == ["tj"]
    assert "categories" not in spec["names"]
    version = spec["versions"][0]
    scale = version["subresources"]["scale"]
    assert scale["specReplicasPath"] == ".spec.replicaSpecs.worker.replicas"
    assert scale["statusReplicasPath"] == ".status.replicaStatuses.worker.active"
    assert scale["labelSelectorPath"] == ".status.selector"
    paths = {col["name"]: col["jsonPath"] for col in version["additionalPrinterColumns"]}
    assert paths["Ready"] == ".status.replicaStatuses.worker.ready"
    assert paths["Workers"] == ".spec.replicaSpecs.worker.replicas"
    assert paths["Restarts"] == ".status.restartCount"
    assert paths["Age"] == ".metadata.creationTimestamp"


def test_enums_and_defaults_match_types() -> None:
    spec = _spec_schema()
    props = spec["properties"]
    for role in c.ROLES:
        role_props = props["replicaSpecs"]["properties"][role]["properties"]
        assert role_props["replicas"]["default"] == DEFAULT_REPLICAS
        restart = role_props["restartPolicy"]
        assert restart["enum"] == [p.value for p in RestartPolicy]
        assert restart["default"] == DEFAULT_RESTART_POLICY.value
    elastic = props["elasticPolicy"]["properties"]
    d_elastic = ElasticPolicy(min_replicas=1, max_replicas=1)
    assert elastic["rdzvBackend"]["enum"] == list(c.RDZV_BACKENDS)
    assert elastic["rdzvBackend"]["default"] == d_elastic.rdzv_backend
    assert elastic["rdzvPort"]["default"] == d_elastic.rdzv_port == c.DEFAULT_RDZV_PORT
    assert elastic["maxRestarts"]["default"] == d_elastic.max_restarts
    assert elastic["lastCallTimeoutSeconds"]["default"] == d_elastic.last_call_timeout_seconds
    run = props["runPolicy"]["properties"]
    d_run = RunPolicy()
    assert run["backoffLimit"]["default"] == d_run.backoff_limit
    assert run["suspend"]["default"] is d_run.suspend
    assert run["cleanPodPolicy"]["enum"] == [p.value for p in CleanPodPolicy]
    assert run["cleanPodPolicy"]["default"] == d_run.clean_pod_policy.value
    backoff = run["restartBackoff"]["properties"]
    assert backoff["initialSeconds"]["default"] == RestartBackoff().initial_seconds
    assert backoff["maxSeconds"]["default"] == RestartBackoff().max_seconds
    assert "default" not in run["activeDeadlineSeconds"]
    assert "default" not in run["ttlSecondsAfterFinished"]
    assert props["successPolicy"]["enum"] == [p.value for p in SuccessPolicy]
    assert props["successPolicy"]["default"] == SuccessPolicy.ALL_WORKERS.value
    assert props["nprocPerNode"]["default"] == c.NPROC_AUTO


def test_singleton_roles_are_capped_at_one() -> None:
    roles = _spec_schema()["properties"]["replicaSpecs"]["properties"]
    for role in c.ROLES:
        maximum = roles[role]["properties"]["replicas"]["maximum"]
        assert maximum == (1 if role in c.SINGLETON_ROLES else c.MAX_REPLICAS)


def _all_rules() -> list[tuple[str, Schema, Schema]]:
    root = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return [
        (path, node, r)
        for path, node in _walk(root)
        for r in node.get("x-kubernetes-validations", [])
    ]


@pytest.mark.parametrize(("path", "node", "rule"), _all_rules())
def test_cel_rule_compiles_and_names_its_field(path: str, node: Schema, rule: Schema) -> None:
    env = celpy.Environment()
    env.compile(rule["rule"])
    message = rule["message"]
    assert message.startswith(("spec.", "metadata.", "the set of roles in spec.")), message
    field_path = rule.get("fieldPath")
    if field_path is not None:
        target = node
        for key in field_path.lstrip(".").split("."):
            target = target["properties"][key]
    assert rule.get("reason", "FieldValueInvalid") in {
        "FieldValueInvalid",
        "FieldValueForbidden",
        "FieldValueRequired",
        "FieldValueDuplicate",
    }


def test_transition_rules_are_not_under_lists() -> None:
    """A transition rule never sits under a list (the API server refuses that)."""
    for path, _node, r in _all_rules():
        if "oldSelf" in r["rule"]:
            assert "[*]" not in path, path


def test_every_spec_field_is_documented() -> None:
    doc = (REPO / "docs" / "api.md").read_text()
    missing = sorted(
        {
            path.rsplit(".", 1)[-1]
            for path, _node in _walk(_spec_schema())
            if path and "[*]" not in path and ".template." not in path
        }
        - {"*"}
        - {word.strip("`") for word in doc.split() if word.startswith("`")}
        - {part for word in doc.split() for part in word.strip("`|,.()").split(".")}
    )
    assert missing == [], f"fields missing from docs/api.md: {missing}"
