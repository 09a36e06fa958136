"""Every PromQL expression the chart ships, for tests that run them against a real Prometheus.

The alerts (``charts/elastrain/files/alerts.yaml``) and the Grafana dashboard
(``charts/elastrain/dashboards/elastrain.json``) are only as good as their queries: a renamed
metric or label makes a panel empty and an alert silent, and neither says so. This module reads
both files as shipped, so a test can evaluate each query against series the real operator and
trainer exported, and :func:`to_promql` turns a dashboard query, which holds Grafana's template
variables, into plain PromQL. It reads files only (no Grafana SDK), so any test can import it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "elastrain"
ALERTS_FILE = CHART / "files" / "alerts.yaml"
DASHBOARD_FILE = CHART / "dashboards" / "elastrain.json"

# The operator's scrape target. The chart's ServiceMonitor names the job after the metrics
# Service ("<release>-elastrain-metrics", or "<release>-metrics" when the release name holds
# "elastrain"); the trainers' PodMonitor job ("<namespace>/<fullname>-trainers") holds
# "elastrain" too, hence the exclusion. The ElastrainOperatorDown alert and the dashboard's
# operator panels use exactly this selector (tests/observability holds them equal).
OPERATOR_JOB_MATCHERS = 'job=~".*elastrain.*", job!~".*trainer.*"'
OPERATOR_UP = f"up{{{OPERATOR_JOB_MATCHERS}}}"

# Grafana's variables in the dashboard's queries, and what they become in plain PromQL.
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")

# What metric_names() removes before reading identifiers as metric names: strings, label
# matchers, range and subquery brackets, and label lists of grouping and vector matching.
_NOT_NAMES = re.compile(
    r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]'
    r"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
_IDENTIFIER = re.compile(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
# Series Prometheus makes itself for every target, which no exporter declares.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def alert_rules(path: Path = ALERTS_FILE) -> list[dict[str, Any]]:
    """Every alerting rule of the rule file, in file order, as written (alert, expr, for, ...)."""
    doc = yaml.safe_load(path.read_text())
    return [dict(rule) for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def _targets(panels: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield from panel.get("targets") or []
        # A collapsed row holds its panels inside itself.
        yield from _targets(panel.get("panels") or [])


def dashboard_queries(dashboard: Mapping[str, Any] | None = None) -> list[str]:
    """The ``expr`` of every target of every panel, in panel order; rows are descended into.

    Without ``dashboard``, the committed dashboard file (what the chart ships). The expressions
    still hold Grafana's variables (``$namespace``, ``$__rate_interval``): see :func:`to_promql`.
    """
    if dashboard is None:
        dashboard = json.loads(DASHBOARD_FILE.read_text())
    return [t["expr"] for t in _targets(dashboard.get("panels") or []) if t.get("expr")]


def to_promql(
    expr: str,
    *,
    namespace: str = ".*",
    datasource: str = "prometheus",
    rate_interval: str = "1m",
    interval: str = "30s",
    range_: str = "1h",
) -> str:
    """``expr`` with Grafana's variables replaced as Grafana would, so Prometheus can run it.

    ``namespace`` is a regex, as Grafana sends a multi-value variable inside ``=~``. An unknown
    variable raises KeyError: a query using a variable the dashboard does not define is a bug.
    """
    values = {
        "namespace": namespace,
        "datasource": datasource,
        "__rate_interval": rate_interval,
        "__interval": interval,
        "__range": range_,
    }

    def replace(match: re.Match[str]) -> str:
        return values[match.group(1) or match.group(2)]

    return _VARIABLE.sub(replace, expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not its functions, keywords or label names)."""
    stripped = _NOT_NAMES.sub(" ", expr)
    return {
        m.group(1)
        for m in _IDENTIFIER.finditer(stripped)
        if not m.group(2) and m.group(1).lower() not in _KEYWORDS
    }


def exported_series() -> set[str]:
    """Names of every series the operator's and a trainer's ``/metrics`` can expose.

    Read from the real registries (``elastrain.metrics.registry.Metrics`` and
    ``elastrain_trainer.metrics.TrainerMetrics``), expanded the way the exposition format
    names samples (a counter ``x`` is ``x_total``; a histogram ``x`` is ``x_bucket``,
    ``x_sum`` and ``x_count``), so a query on a metric nobody exports can be caught offline.
    Imports the operator and the trainer (and so torch): call it from tests, not at import.
    """
    from elastrain.metrics.registry import Metrics
    from elastrain_trainer.metrics import TrainerMetrics

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for registry in (Metrics().registry, TrainerMetrics("worker", 0).registry):
        for family in registry.collect():
            names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names
