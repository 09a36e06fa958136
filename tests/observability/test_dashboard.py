"""The Grafana dashboard: the committed JSON is what ``elastrain_dev.dashboard`` generates, the
chart's ConfigMap carries it, and every query is valid PromQL on metrics that are exported, with
only the dashboard's own variables.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from elastrain_dev import dashboard, promql
from prometheus_harness import promtool_check_rules

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / ".tools" / "bin" / "helm"
PROMTOOL = REPO / ".tools" / "bin" / "promtool"
CHART = REPO / "charts" / "elastrain"


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return dashboard.as_dict()


def panels(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in d["panels"]:
        out.append(panel)
        out.extend(panel.get("panels") or [])
    return out


def test_committed_dashboard_is_the_generated_one() -> None:
    assert promql.DASHBOARD_FILE.read_text() == dashboard.render(), (
        "charts/elastrain/dashboards/elastrain.json is stale: "
        "run .venv/bin/python -m elastrain_dev.dashboard"
    )


def test_check_flag_reports_a_stale_file(tmp_path: Path) -> None:
    out = tmp_path / "elastrain.json"
    assert dashboard.main(["--check", "--output", str(out)]) == 1
    assert dashboard.main(["--output", str(out)]) == 0
    assert dashboard.main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text().replace('"Elastrain"', '"Edited"'))
    assert dashboard.main(["--check", "--output", str(out)]) == 1


def test_config_map_rendered_by_helm_carries_the_dashboard() -> None:
    assert HELM.exists(), f"{HELM} is missing: run `make install`"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump({"dashboard": {"enabled": True}}, f)
        f.flush()
        cmd = [str(HELM), "template", "elastrain", str(CHART), "--values", f.name]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    (config_map,) = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "ConfigMap"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["elastrain.json"]) == dashboard.as_dict()
    # kubectl apply keeps a copy in an annotation limited to 256 KiB.
    assert len(config_map["data"]["elastrain.json"]) < 256 * 1024


def test_panels_use_the_datasource_variable(generated: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in generated["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["includeAll"] and variables["namespace"]["multi"]
    for panel in panels(generated):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


def test_panel_ids_are_unique_and_the_layout_fits(generated: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(generated)]
    assert len(ids) == len(set(ids))
    for p in panels(generated):
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24, p["title"]


def test_the_panels_the_docs_promise(generated: dict[str, Any]) -> None:
    """docs/monitoring.md describes these panels; each reads the metric it is about."""
    queries = {
        p["title"]: " ".join(t["expr"] for t in p.get("targets") or []) for p in panels(generated)
    }
    expected = {
        "Jobs by phase": "elastrain_jobs",
        "Pods by role and phase": "elastrain_pods",
        "GPUs requested": "elastrain_gpus_requested",
        "Progress": "elastrain_trainer_total_steps",
        "Loss": "elastrain_trainer_loss",
        "Throughput": "elastrain_trainer_samples_per_second",
        "World size": "elastrain_trainer_world_size",
        "Restarts": "elastrain_jobs_restarted_total",
        "Failures": "elastrain_jobs_failed_total",
        "Scale events": "elastrain_job_scale_events_total",
        "Time to Running": "elastrain_job_time_to_running_seconds_bucket",
        "Pod replacement time": "elastrain_pod_replacement_seconds_bucket",
        "Scale duration": "elastrain_job_scale_duration_seconds_bucket",
        "Operator up": promql.OPERATOR_UP,
        "Reconcile errors": "elastrain_reconcile_errors_total",
        "Reconcile duration": "elastrain_reconcile_duration_seconds_bucket",
        "Work queue depth": "elastrain_workqueue_depth",
        "Operator memory": "process_resident_memory_bytes",
    }
    for title, metric in expected.items():
        assert metric in queries.get(title, ""), title
    docs = (REPO / "docs" / "monitoring.md").read_text()
    for title in (p["title"] for p in panels(generated)):
        assert f"**{title}**" in docs, f"docs/monitoring.md does not describe panel {title!r}"


def test_queries_come_from_the_committed_file(generated: dict[str, Any]) -> None:
    queries = promql.dashboard_queries()
    assert queries == promql.dashboard_queries(generated)
    assert len(queries) == sum(len(p.get("targets") or []) for p in panels(generated))


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (as a recording rule) once Grafana's variables are filled."""
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: run `make install`"
    queries = [promql.to_promql(q, namespace="team-a|team-b") for q in promql.dashboard_queries()]
    assert not [q for q in queries if "$" in q]
    rules = [{"record": f"dashboard:query{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    ok, output = promtool_check_rules(path)
    assert ok, output
    # And the check bites: a broken query fails it.
    rules.append({"record": "dashboard:broken", "expr": "sum by (x (y)"})
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert not promtool_check_rules(path)[0]


def test_queries_read_only_exported_metrics() -> None:
    exported = promql.exported_series() | promql.SCRAPE_SERIES
    unknown = {
        q: sorted(promql.metric_names(q) - exported)
        for q in promql.dashboard_queries()
        if promql.metric_names(q) - exported
    }
    assert unknown == {}


def test_to_promql_fills_variables_and_refuses_unknown_ones() -> None:
    expr = 'sum(rate(x{namespace=~"$namespace"}[$__rate_interval])) by (${namespace})'
    assert promql.to_promql(expr, namespace="a|b", rate_interval="2m") == (
        'sum(rate(x{namespace=~"a|b"}[2m])) by (a|b)'
    )
    with pytest.raises(KeyError, match="cluster"):
        promql.to_promql('x{cluster="$cluster"}')
