"""The chart's monitoring objects: the PrometheusRule ships exactly the promtool-tested rule file
(changed only as values say, and still valid), the trainers' PodMonitor labels series as the
dashboard reads them, the dashboard ConfigMap carries the generated JSON, and all of it is off by
default.

These kinds (but the ConfigMap) belong to the Prometheus Operator, whose CRDs are not at hand:
the shapes are checked here, the rules by ``promtool check rules``.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from elastrain_dev import promql, validate_chart
from prometheus_harness import promtool_check_rules

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / ".tools" / "bin" / "helm"
PROMTOOL = REPO / ".tools" / "bin" / "promtool"
CHART = REPO / "charts" / "elastrain"
SCHEMA = CHART / "values.schema.json"
NAMESPACE = validate_chart.NAMESPACE
EXTERNAL = {"PodMonitor", "PrometheusRule", "ServiceMonitor"}
Obj = dict[str, Any]

ALL_ON: Obj = {
    "metrics": {"serviceMonitor": {"enabled": True}},
    "trainerMetrics": {"podMonitor": {"enabled": True}},
    "prometheusRule": {"enabled": True},
    "dashboard": {"enabled": True},
}


@pytest.fixture(scope="module", autouse=True)
def _tools_installed() -> None:
    for tool in (HELM, PROMTOOL):
        assert tool.exists(), f"{tool} is missing: run `make install`"


@functools.cache
def _render(values_json: str, release: str) -> list[Obj]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(json.loads(values_json), f)
        f.flush()
        cmd = [str(HELM), "template", release, str(CHART), "--namespace", NAMESPACE]
        proc = subprocess.run(
            [*cmd, "--values", f.name], capture_output=True, text=True, timeout=120, check=False
        )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip())
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def render(values: Obj | None = None, release: str = "elastrain") -> list[Obj]:
    return copy.deepcopy(_render(json.dumps(values or {}, sort_keys=True), release))


def one(docs: list[Obj], kind: str) -> Obj:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def with_(values: Obj, **changes: Obj) -> Obj:
    """``values`` with sections replaced one level deep (``prometheusRule={...}``)."""
    out = copy.deepcopy(values)
    for key, section in changes.items():
        out[key] = {**out.get(key, {}), **section}
    return out


def rule_file_groups() -> list[Obj]:
    groups: list[Obj] = yaml.safe_load(promql.ALERTS_FILE.read_text())["groups"]
    return groups


def promtool_check(groups: list[Obj], tmp_path: Path) -> None:
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    ok, output = promtool_check_rules(path)
    assert ok, output


def rendered_rules(docs: list[Obj]) -> dict[str, Obj]:
    return {
        r["alert"]: r for g in one(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]
    }


def test_everything_is_off_by_default() -> None:
    kinds = {d["kind"] for d in render()}
    assert kinds.isdisjoint({"PodMonitor", "PrometheusRule", "ConfigMap"})


def test_all_on_renders_valid_core_objects() -> None:
    docs = render(ALL_ON)
    assert {"PodMonitor", "PrometheusRule", "ConfigMap", "ServiceMonitor"} <= {
        d["kind"] for d in docs
    }
    core = [d for d in docs if d["kind"] not in EXTERNAL]
    assert validate_chart.validate_manifests(core, "1.37.0", expect_sa=True) == []
    for doc in (d for d in docs if d["kind"] in {"PodMonitor", "PrometheusRule", "ConfigMap"}):
        assert doc["metadata"]["namespace"] == NAMESPACE
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "elastrain"


def test_prometheus_rule_ships_the_tested_file_unchanged(tmp_path: Path) -> None:
    rule = one(render(ALL_ON), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == rule_file_groups()
    promtool_check(rule["spec"]["groups"], tmp_path)


def test_prometheus_rule_changes_from_values(tmp_path: Path) -> None:
    values = with_(
        ALL_ON,
        prometheusRule={
            "enabled": True,
            "labels": {"release": "kube-prometheus-stack"},
            "ruleLabels": {"team": "ml"},
            "alerts": {
                "ElastrainJobPendingTooLong": {"threshold": 1800, "for": "5m"},
                "ElastrainRestartRateHigh": {"threshold": 2.5, "severity": "critical"},
                "ElastrainJobFailed": {"threshold": 3},
                "ElastrainReconcileErrors": {"disabled": True},
            },
        },
    )
    docs = render(values)
    assert one(docs, "PrometheusRule")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    got = rendered_rules(docs)
    shipped = {r["alert"]: r for g in rule_file_groups() for r in g["rules"]}
    assert "ElastrainReconcileErrors" not in got
    assert set(got) == set(shipped) - {"ElastrainReconcileErrors"}

    pending = got["ElastrainJobPendingTooLong"]
    assert pending["expr"] == shipped["ElastrainJobPendingTooLong"]["expr"].replace(
        "> 900", "> 1800"
    )
    assert pending["for"] == "5m"
    restarts = got["ElastrainRestartRateHigh"]
    assert restarts["expr"].endswith("> 2.5")
    assert restarts["labels"] == {"severity": "critical", "team": "ml"}
    assert got["ElastrainJobFailed"]["expr"].endswith(") > 3")
    for name, rule in got.items():
        assert rule["labels"]["team"] == "ml"
        assert rule["annotations"] == shipped[name]["annotations"]
        if name not in values["prometheusRule"]["alerts"]:
            assert rule["expr"] == shipped[name]["expr"]
            assert rule.get("for") == shipped[name].get("for")
    promtool_check(one(docs, "PrometheusRule")["spec"]["groups"], tmp_path)


def test_every_thresholded_alert_can_be_changed() -> None:
    """Each alert whose expr ends in ``> NUMBER`` takes a threshold; the others refuse one."""
    for rule in promql.alert_rules():
        values = with_(ALL_ON, prometheusRule={"alerts": {rule["alert"]: {"threshold": 77}}})
        if re.search(r">\s*[0-9.]+\s*$", rule["expr"]):
            assert rendered_rules(render(values))[rule["alert"]]["expr"].endswith("> 77")
        else:
            with pytest.raises(RuntimeError, match="has no threshold to change"):
                render(values)


def test_values_schema_knows_exactly_the_shipped_alerts() -> None:
    """A new alert needs its schema entry (values are strict); a typo is refused."""
    schema = json.loads(SCHEMA.read_text())
    alerts = schema["properties"]["prometheusRule"]["properties"]["alerts"]
    assert sorted(alerts["properties"]) == sorted(r["alert"] for r in promql.alert_rules())
    with pytest.raises(RuntimeError, match="ElastrainJobFaild"):
        render(with_(ALL_ON, prometheusRule={"alerts": {"ElastrainJobFaild": {"for": "1m"}}}))


def test_pod_monitor_selects_trainer_pods_and_labels_them() -> None:
    monitor = one(render(ALL_ON), "PodMonitor")
    spec = monitor["spec"]
    assert spec["selector"] == {
        "matchExpressions": [{"key": "elastrain.dev/job-name", "operator": "Exists"}]
    }
    assert spec["namespaceSelector"] == {"any": True}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == (
        "metrics",
        "/metrics",
        "30s",
    )
    relabel = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert relabel == {
        # Prometheus's pod-label meta labels: every character not valid in a label name -> "_".
        "trainingjob": ["__meta_kubernetes_pod_label_elastrain_dev_job_name"],
        "replica_type": ["__meta_kubernetes_pod_label_elastrain_dev_replica_type"],
        "replica_index": ["__meta_kubernetes_pod_label_elastrain_dev_replica_index"],
        "namespace": ["__meta_kubernetes_namespace"],
        "pod": ["__meta_kubernetes_pod_name"],
    }


def test_pod_monitor_follows_watched_namespaces_and_values() -> None:
    values = with_(
        ALL_ON,
        trainerMetrics={
            "podMonitor": {"enabled": True, "port": "prom", "interval": "15s", "labels": {"a": "b"}}
        },
    )
    values["watchNamespaces"] = ["team-a", "team-b"]
    monitor = one(render(values), "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["interval"]) == ("prom", "15s")
    assert monitor["metadata"]["labels"]["a"] == "b"


@pytest.mark.parametrize("release", ["elastrain", "ml", "elastrain-prod"])
def test_operator_down_tells_the_operator_from_the_trainers(release: str) -> None:
    """The ServiceMonitor's job (its Service's name) is the operator's; the PodMonitor's is not."""
    docs = render(ALL_ON, release=release)
    matchers = dict(re.findall(r'job(=~|!~)"([^"]*)"', promql.OPERATOR_JOB_MATCHERS))

    def is_operator(job: str) -> bool:
        return bool(re.fullmatch(matchers["=~"], job)) and not re.fullmatch(matchers["!~"], job)

    services = {s["metadata"]["name"] for s in docs if s["kind"] == "Service"}
    monitor = one(docs, "ServiceMonitor")
    (service,) = [
        s
        for s in docs
        if s["kind"] == "Service"
        and s["metadata"]["labels"].items() >= monitor["spec"]["selector"]["matchLabels"].items()
    ]
    assert service["metadata"]["name"] in services and is_operator(service["metadata"]["name"])
    pod_monitor = one(docs, "PodMonitor")["metadata"]
    assert not is_operator(f"{pod_monitor['namespace']}/{pod_monitor['name']}")


def test_dashboard_config_map() -> None:
    config_map = one(render(ALL_ON), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (key,) = config_map["data"]
    assert json.loads(config_map["data"][key]) == json.loads(promql.DASHBOARD_FILE.read_text())


def test_dashboard_config_map_values() -> None:
    values = with_(
        ALL_ON,
        dashboard={
            "enabled": True,
            "label": "grafana.io/dashboard",
            "labelValue": "elastrain",
            "namespace": "monitoring",
            "labels": {"team": "ml"},
            "annotations": {"grafana_folder": "ML"},
        },
    )
    meta = one(render(values), "ConfigMap")["metadata"]
    assert meta["namespace"] == "monitoring"
    assert meta["labels"]["grafana.io/dashboard"] == "elastrain"
    assert "grafana_dashboard" not in meta["labels"]
    assert meta["labels"]["team"] == "ml"
    assert meta["annotations"] == {"grafana_folder": "ML"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"prometheusRule": {"alerts": {"ElastrainJobFailed": {"for": "soon"}}}}, "for"),
        (
            {"prometheusRule": {"alerts": {"ElastrainJobFailed": {"threshold": "1; drop"}}}},
            "threshold",
        ),
        ({"prometheusRule": {"alerts": {"ElastrainJobFailed": {"threshold": -1}}}}, "threshold"),
        ({"trainerMetrics": {"podMonitor": {"enable": True}}}, "enable"),
        ({"dashboard": {"labelValue": 1}}, "labelValue"),
    ],
)
def test_bad_monitoring_values_are_refused(values: Obj, message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        render(values)
