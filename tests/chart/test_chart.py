"""The Helm chart: renders valid manifests for every value set, RBAC has the right shape and
only the verbs the operator uses, values are strictly checked, and the validator catches
broken manifests."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from elastrain.controller import cli
from elastrain.controller.config import OperatorConfig
from elastrain.kube import access
from elastrain_dev import validate_chart
from rbac_audit import granted

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / ".tools" / "bin" / "helm"
CHART = REPO / "charts" / "elastrain"
Obj = dict[str, Any]

OPERATOR_RULES = [
    {
        "apiGroups": ["elastrain.dev"],
        "resources": ["trainingjobs"],
        "verbs": ["get", "list", "watch", "delete"],
    },
    {"apiGroups": ["elastrain.dev"], "resources": ["trainingjobs/status"], "verbs": ["patch"]},
    {
        "apiGroups": ["elastrain.dev"],
        "resources": ["trainingjobs/finalizers"],
        "verbs": ["update"],
    },
    {
        "apiGroups": [""],
        "resources": ["pods", "services"],
        "verbs": ["get", "list", "watch", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {
        "apiGroups": ["scheduling.x-k8s.io"],
        "resources": ["podgroups"],
        "verbs": ["get", "list", "watch", "create", "delete"],
    },
]
CRD_READ = {
    "apiGroups": ["apiextensions.k8s.io"],
    "resources": ["customresourcedefinitions"],
    "verbs": ["list", "watch"],
}


@pytest.fixture(scope="module", autouse=True)
def _helm_installed() -> None:
    assert HELM.exists(), f"{HELM} is missing: run `make install`"


@functools.cache
def _render(values_json: str) -> list[Obj]:
    return validate_chart.render(str(HELM), CHART, json.loads(values_json))


def render(values: Obj | None = None) -> list[Obj]:
    return copy.deepcopy(_render(json.dumps(values or {}, sort_keys=True)))


def of_kind(docs: list[Obj], kind: str) -> list[Obj]:
    return [d for d in docs if d["kind"] == kind]


def operator_container(docs: list[Obj]) -> Obj:
    (deploy,) = of_kind(docs, "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    return container


def test_validator_accepts_every_value_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert validate_chart.main([str(HELM), str(CHART)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok   ") == len(validate_chart.VALUE_SETS)


def test_default_install_is_cluster_wide() -> None:
    docs = render()
    assert of_kind(docs, "Role") == [] and of_kind(docs, "RoleBinding") == []
    (role,) = of_kind(docs, "ClusterRole")
    assert role["rules"] == [*OPERATOR_RULES, CRD_READ]
    (binding,) = of_kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["namespace"] == validate_chart.NAMESPACE
    container = operator_container(docs)
    assert container["image"] == "ghcr.io/elastrain/operator:0.1.0"
    assert container["command"] == ["python", "-m", "elastrain", "operator"]
    assert container["args"] == [
        "--metrics-port=8080",
        "--health-port=8081",
        "--log-format=json",
        "--workers=16",
        "--progress-interval=15",
        "--stall-after=600",
    ]
    (deploy,) = of_kind(docs, "Deployment")
    assert deploy["spec"]["strategy"]["type"] == "Recreate"
    (crd,) = of_kind(docs, "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "trainingjobs.elastrain.dev"


def test_watch_namespaces_get_roles_and_only_crd_read_cluster_wide() -> None:
    docs = render({"watchNamespaces": ["team-a", "team-b"]})
    roles = of_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(r["rules"] == OPERATOR_RULES for r in roles)
    bindings = of_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    (cluster_role,) = of_kind(docs, "ClusterRole")
    assert cluster_role["rules"] == [CRD_READ]
    args = operator_container(docs)["args"]
    assert args[:2] == ["--namespace=team-a", "--namespace=team-b"]


def test_peering_cluster_wide() -> None:
    docs = render({"peering": {"enabled": True}})
    (role,) = of_kind(docs, "ClusterRole")
    assert role["rules"][-1] == {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings"],
        "verbs": ["list", "watch", "patch"],
    }
    (peering,) = of_kind(docs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "elastrain"
    assert "post-install" in peering["metadata"]["annotations"]["helm.sh/hook"]
    crds = {c["metadata"]["name"] for c in of_kind(docs, "CustomResourceDefinition")}
    assert crds == {"trainingjobs.elastrain.dev", "clusterkopfpeerings.kopf.dev"}
    assert "--peering=elastrain" in operator_container(docs)["args"]
    (deploy,) = of_kind(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"


def test_peering_namespaced() -> None:
    docs = render({"watchNamespaces": ["team-a", "team-b"], "peering": {"enabled": True}})
    peerings = of_kind(docs, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    for role in of_kind(docs, "Role"):
        assert role["rules"][-1]["resources"] == ["kopfpeerings"]
    crds = {c["metadata"]["name"] for c in of_kind(docs, "CustomResourceDefinition")}
    assert "kopfpeerings.kopf.dev" in crds


def test_peering_crds_can_be_left_to_someone_else() -> None:
    docs = render({"peering": {"enabled": True, "createCRDs": False}})
    crds = {c["metadata"]["name"] for c in of_kind(docs, "CustomResourceDefinition")}
    assert crds == {"trainingjobs.elastrain.dev"}
    assert len(of_kind(docs, "ClusterKopfPeering")) == 1


@pytest.mark.parametrize("name", sorted(validate_chart.VALUE_SETS))
def test_rbac_has_no_wildcards_and_no_access_to_secrets(name: str) -> None:
    """Least privilege in every value set: each rule names its groups, resources and verbs, and
    none reaches Secrets (an operator that can read them can read every team's credentials)."""
    docs = render(validate_chart.VALUE_SETS[name])
    rules = [r for d in docs if d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]
    assert rules or not validate_chart.VALUE_SETS[name].get("rbac", {}).get("create", True)
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(key, []), f"{name}: a wildcard in {key}: {rule}"
        assert "secrets" not in rule["resources"], f"{name}: {rule}"
        assert not rule.get("nonResourceURLs"), f"{name}: {rule}"


@pytest.mark.parametrize("name", sorted(validate_chart.VALUE_SETS))
def test_rbac_grants_exactly_what_the_operator_calls(name: str) -> None:
    """Both directions against the operator's table of API accesses (``kube/access.py``): each
    call it makes is granted, and nothing it never calls is. The real control plane then
    checks the table against the requests the operator really sends (``tests/rbac_audit.py``)."""
    values = validate_chart.VALUE_SETS[name]
    if not values.get("rbac", {}).get("create", True):
        pytest.skip("rbac.create=false: the user brings the rules")
    docs = render(values)
    namespaced = bool(values.get("watchNamespaces"))
    peering = bool(values.get("peering", {}).get("enabled"))
    want = access.needed(namespaced=namespaced, peering=peering)
    roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    if namespaced:  # each watched namespace's Role, plus the cluster-scoped CRD reader
        cluster = {a for d in roles if d["kind"] == "ClusterRole" for a in granted(d["rules"])}
        for role in (d for d in roles if d["kind"] == "Role"):
            got = granted(role["rules"]) | cluster
            assert sorted(map(str, got - want)) == [], f"granted, never called: {role['metadata']}"
            assert sorted(map(str, want - got)) == [], f"called, not granted: {role['metadata']}"
        return
    got = {a for d in roles for a in granted(d["rules"])}
    assert sorted(map(str, got - want)) == [], "granted, never called"
    assert sorted(map(str, want - got)) == [], "called, not granted"


def test_external_rbac_and_service_account() -> None:
    docs = render(
        {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "ops-sa"}}
    )
    kinds = {d["kind"] for d in docs}
    assert kinds.isdisjoint({"ClusterRole", "Role", "ServiceAccount", "ClusterRoleBinding"})
    (deploy,) = of_kind(docs, "Deployment")
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == "ops-sa"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": 2}, "replicaCount > 1 is not supported"),
        ({"replicaCount": 2, "peering": {"enabled": True}}, "same-priority peers"),
        ({"operator": {"extraArgs": ["kube-qps=5"]}}, "extraArgs"),
        ({"watchNamespace": ["team-a"]}, "watchNamespace"),
        ({"operator": {"logFormat": "xml"}}, "logFormat"),
        ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
        ({"metrics": {"port": 8081}}, "metrics.port and health.port must differ"),
        ({"serviceAccount": {"create": False}}, "serviceAccount.name is required"),
    ],
)
def test_bad_values_fail_with_a_clear_message(values: Obj, message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        validate_chart.render(str(HELM), CHART, values)


def _broken(mutate: Any) -> list[str]:
    docs = render()
    mutate(docs)
    return validate_chart.validate_manifests(docs, "1.37.0", expect_sa=True)


def test_validator_reports_broken_manifests() -> None:
    def unknown_field(docs: list[Obj]) -> None:
        of_kind(docs, "Deployment")[0]["spec"]["replica"] = 1

    def dangling_binding(docs: list[Obj]) -> None:
        of_kind(docs, "ClusterRoleBinding")[0]["roleRef"]["name"] = "nobody"

    def privileged(docs: list[Obj]) -> None:
        operator_container(docs)["securityContext"]["allowPrivilegeEscalation"] = True

    def bad_probe(docs: list[Obj]) -> None:
        operator_container(docs)["livenessProbe"]["httpGet"]["port"] = "nope"

    def orphan_service(docs: list[Obj]) -> None:
        of_kind(docs, "Service")[0]["spec"]["selector"] = {"app": "other"}

    def bad_crd(docs: list[Obj]) -> None:
        crd = of_kind(docs, "CustomResourceDefinition")[0]
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        schema["properties"]["spec"]["x-kubernetes-validations"][0]["rule"] = "self.nope("

    assert any("spec.replica" in e or "replica" in e for e in _broken(unknown_field))
    assert any("roleRef ClusterRole nobody" in e for e in _broken(dangling_binding))
    assert any("allowPrivilegeEscalation" in e for e in _broken(privileged))
    assert any("livenessProbe" in e for e in _broken(bad_probe))
    assert any("matches no rendered pod template" in e for e in _broken(orphan_service))
    assert any("trainingjobs.elastrain.dev" in e for e in _broken(bad_crd))
    assert validate_chart.validate_manifests(render(), "1.37.0", expect_sa=True) == []


def test_chart_crd_is_the_generated_one() -> None:
    generated = yaml.safe_load((REPO / "crds" / "trainingjobs.elastrain.dev.yaml").read_text())
    (crd,) = of_kind(render(), "CustomResourceDefinition")
    assert crd == generated


def test_lint_passes_with_the_makefile_settings() -> None:
    for extra in ([], ["--set", "watchNamespaces={team-a}", "--set", "peering.enabled=true"]):
        proc = subprocess.run(
            [str(HELM), "lint", str(CHART), *extra], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_operator_flags_from_values() -> None:
    values = {
        "operator": {
            "logFormat": "plain",
            "verbose": True,
            "workers": 8,
            "progressInterval": 5,
            "stallAfter": 0,
            "extraArgs": ["--x=1"],
        },
        "metrics": {"port": 9100},
        "health": {"port": 9101},
    }
    container = operator_container(render(values))
    assert container["args"] == [
        "--metrics-port=9100",
        "--health-port=9101",
        "--log-format=plain",
        "--workers=8",
        "--progress-interval=5",
        "--stall-after=0",
        "--verbose",
        "--x=1",
    ]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9100, "health": 9101}


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"watchNamespaces": ["team-a", "team-b"], "peering": {"enabled": True}},
        {"operator": {"verbose": True, "workers": 2, "extraArgs": ["--kube-qps=50"]}},
    ],
    ids=["defaults", "namespaced-peering", "tuned"],
)
def test_rendered_args_parse_with_the_operator_cli(values: Obj) -> None:
    """The chart passes exactly what ``python -m elastrain operator`` accepts."""
    container = operator_container(render(values))
    assert container["command"][-2:] == ["elastrain", "operator"]
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    config = cli.config_from_args(parser.parse_args(container["args"]))
    assert list(config.namespaces) == values.get("watchNamespaces", [])
    assert config.peering == ("elastrain" if values.get("peering") else None)
    assert (config.metrics_port, config.health_port) == (8080, 8081)
    assert config.log_format == "json"


def test_the_chart_defaults_are_the_operators_own() -> None:
    """A chart installed with default values runs the operator as its own defaults would."""
    container = operator_container(render())
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    from_chart = cli.config_from_args(parser.parse_args(container["args"]))
    from_flags = cli.config_from_args(parser.parse_args([]))
    assert from_flags == OperatorConfig()
    assert from_chart == dataclasses.replace(OperatorConfig(), log_format="json")


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_the_operator_refuses_fewer_than_one_worker(
    workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    with pytest.raises(SystemExit):
        parser.parse_args([f"--workers={workers}"])
    assert "--workers: must be at least 1" in capsys.readouterr().err


def test_the_peering_lifetime_is_at_least_ten_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    assert cli.config_from_args(parser.parse_args(["--peering-lifetime=10"])).peering_lifetime == 10
    with pytest.raises(SystemExit):
        parser.parse_args(["--peering-lifetime=9"])
    assert "--peering-lifetime: must be at least 10" in capsys.readouterr().err
    args = operator_container(render({"peering": {"enabled": True, "lifetimeSeconds": 15}}))["args"]
    assert "--peering-lifetime=15" in args


def test_service_monitor() -> None:
    docs = render({"metrics": {"serviceMonitor": {"enabled": True, "labels": {"team": "ml"}}}})
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["team"] == "ml"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert of_kind(render(), "ServiceMonitor") == []
    with pytest.raises(RuntimeError, match=r"needs metrics\.service\.enabled"):
        validate_chart.render(
            str(HELM),
            CHART,
            {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}},
        )
    monitor["spec"]["endpoints"][0]["port"] = "web"
    errors = validate_chart.validate_manifests(docs, "1.37.0", expect_sa=True)
    assert errors == [
        f"ServiceMonitor {validate_chart.NAMESPACE}/elastrain: port web is not served"
    ]
