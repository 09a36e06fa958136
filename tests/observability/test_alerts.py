"""The chart's alerts: valid rules, unit-tested by promtool firing and not firing, every alert
covered, each documented, and reading only metrics the operator really exports.

``promtool test rules`` runs tests/observability/alerts_test.yaml against
charts/elastrain/files/alerts.yaml, the file the PrometheusRule template ships. The mutation
tests prove those unit tests bite: an alert made never to fire (or always to fire) fails them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from elastrain_dev import promql

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = REPO / ".tools" / "bin" / "promtool"
ALERTS = promql.ALERTS_FILE
UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")
DOCS = REPO / "docs" / "monitoring.md"
SEVERITIES = {"critical", "warning", "info"}


@pytest.fixture(scope="module", autouse=True)
def _promtool_installed() -> None:
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: run `make install`"


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMTOOL), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def rules() -> list[dict[str, Any]]:
    return promql.alert_rules()


def names() -> list[str]:
    return [r["alert"] for r in rules()]


def test_rules_are_valid() -> None:
    proc = promtool("check", "rules", ALERTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules())} rules found" in proc.stdout


def test_promtool_unit_tests_pass() -> None:
    proc = promtool("test", "rules", UNIT_TESTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def _cases() -> dict[str, dict[str, int]]:
    """Per alert name: how many evaluations expect it firing, and how many expect silence."""
    doc = yaml.safe_load(UNIT_TESTS.read_text())
    counts: dict[str, dict[str, int]] = {}
    for test in doc["tests"]:
        for case in test.get("alert_rule_test") or []:
            kind = "firing" if case.get("exp_alerts") else "quiet"
            counts.setdefault(case["alertname"], {"firing": 0, "quiet": 0})[kind] += 1
    return counts


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    counts = _cases()
    missing = [
        f"{name}: no {kind} case"
        for name in names()
        for kind in ("firing", "quiet")
        if not counts.get(name, {}).get(kind)
    ]
    assert missing == [], f"add cases to {UNIT_TESTS.name}"
    assert sorted(set(counts) - set(names())) == [], "unit tests for alerts that do not exist"


def test_unit_tests_point_at_the_shipped_file() -> None:
    doc = yaml.safe_load(UNIT_TESTS.read_text())
    assert [(UNIT_TESTS.parent / f).resolve() for f in doc["rule_files"]] == [ALERTS.resolve()]


def _mutated(tmp_path: Path, alert: str, expr: str) -> subprocess.CompletedProcess[str]:
    """Run the unit tests against a copy of the rules whose ``alert`` has ``expr`` instead."""
    doc = yaml.safe_load(ALERTS.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = expr
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(doc))
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    tests["rule_files"] = ["alerts.yaml"]
    (tmp_path / "alerts_test.yaml").write_text(yaml.safe_dump(tests))
    return promtool("test", "rules", tmp_path / "alerts_test.yaml")


@pytest.mark.parametrize("alert", names())
def test_unit_tests_catch_an_alert_that_never_fires(tmp_path: Path, alert: str) -> None:
    proc = _mutated(tmp_path, alert, "vector(1) > 2")
    assert proc.returncode != 0
    assert f"alertname: {alert}," in proc.stdout + proc.stderr


@pytest.mark.parametrize("alert", names())
def test_unit_tests_catch_an_alert_that_always_fires(tmp_path: Path, alert: str) -> None:
    proc = _mutated(tmp_path, alert, "vector(1) > 0")
    assert proc.returncode != 0
    assert f"alertname: {alert}," in proc.stdout + proc.stderr


@pytest.mark.parametrize("rule", rules(), ids=names())
def test_alert_conventions(rule: dict[str, Any]) -> None:
    """Routing needs a severity; on-call needs a summary, a description and a runbook."""
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    anchor = rule["alert"].lower()
    assert annotations["runbook_url"].endswith(f"/docs/monitoring.md#{anchor}")
    # The runbook section exists: GitHub's anchor of a heading `### ElastrainJobFailed`.
    headings = re.findall(r"^#+\s+`?(\w+)`?\s*$", DOCS.read_text(), flags=re.MULTILINE)
    assert anchor in {h.lower() for h in headings}, f"docs/monitoring.md has no {rule['alert']}"


def test_alerts_read_only_exported_metrics() -> None:
    """A renamed metric would leave its alert silent forever; catch that here."""
    exported = promql.exported_series() | promql.SCRAPE_SERIES
    unknown = {
        r["alert"]: sorted(promql.metric_names(r["expr"]) - exported)
        for r in rules()
        if promql.metric_names(r["expr"]) - exported
    }
    assert unknown == {}


def test_operator_down_uses_the_shared_operator_selector() -> None:
    """The dashboard's operator panels and this alert must agree on what the operator is."""
    (rule,) = [r for r in rules() if r["alert"] == "ElastrainOperatorDown"]
    assert promql.OPERATOR_UP in rule["expr"]
    operator = re.compile(r".*elastrain.*")
    trainer = re.compile(r".*trainer.*")
    jobs = {
        "elastrain-metrics": True,  # the chart's ServiceMonitor, release "elastrain"
        "ml-elastrain-metrics": True,  # release "ml"
        "elastrain-system/elastrain-trainers": False,  # the trainers' PodMonitor
        "node-exporter": False,
    }
    for job, is_operator in jobs.items():
        assert bool(operator.fullmatch(job) and not trainer.fullmatch(job)) is is_operator, job


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            'sum by (a) (rate(x_total{a="b"}[5m] offset 1h)) / on(a) group_left(c) y',
            {"x_total", "y"},
        ),
        ('absent(up{job=~".*elastrain.*"} == 1)', {"up"}),
        ("histogram_quantile(0.9, sum by (le) (rate(h_bucket[1h]))) and bool z", {"h_bucket", "z"}),
    ],
)
def test_metric_names(expr: str, expected: set[str]) -> None:
    assert promql.metric_names(expr) == expected
