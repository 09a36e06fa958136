"""``python -m elastrain_dev.dashboard``: generate the chart's Grafana dashboard.

The dashboard is code, built with Grafana's Foundation SDK, so that a change to it is a
reviewable diff of queries rather than of Grafana's JSON, and so that tests can read its queries
(:func:`elastrain_dev.promql.dashboard_queries`). The JSON it writes,
``charts/elastrain/dashboards/elastrain.json``, is committed because the chart ships it (the
``dashboard.enabled`` ConfigMap); tests/observability fails when the committed file is not what
this module generates. ``--check`` says whether it is, without writing.

The panels read the operator's metrics (its ServiceMonitor) and the trainers' (the chart's
PodMonitor, which labels them with ``trainingjob``). ``elastrain_jobs`` and ``elastrain_pods``
have no namespace label, so those two panels show the whole cluster whatever ``$namespace`` is.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from elastrain_dev import promql

# Importing the SDK's classic dashboard model warns that Grafana 12's v2 schema is preferred.
# The classic JSON model is chosen on purpose: Grafana 11 reads only it, and Grafana 12 still
# provisions it from the dashboard sidecar and from files.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from grafana_foundation_sdk.builders import common as common_builders
    from grafana_foundation_sdk.builders import dashboard as dash
    from grafana_foundation_sdk.builders import prometheus, stat, timeseries
    from grafana_foundation_sdk.cog import builder as cogbuilder
    from grafana_foundation_sdk.cog import variants as cogvariants
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common
    from grafana_foundation_sdk.models import dashboard as model

OUTPUT = promql.DASHBOARD_FILE
UID = "elastrain"
DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="${datasource}")
NS = 'namespace=~"$namespace"'
# Trainer series of one job are the same on every worker (job-wide figures); ps pods report
# their shard's own step count, so progress reads the workers'.
WORKER = f'role="worker", {NS}'
# Job starts, replacements and scale-ups are rare: quantiles over an hour of them are readable
# where a rate window of a few scrapes is mostly empty.
LATENCY_WINDOW = "1h"
QUANTILES = ("0.5", "0.9", "0.99")

Query = tuple[str, str]  # (PromQL, legend)


class _Ids:
    """Panel ids, in layout order, so links to a panel (``viewPanel=N``) stay stable."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self) -> int:
        self._next += 1
        return self._next


def _targets(queries: Sequence[Query]) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    return [
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(chr(ord("A") + i))
        .datasource(DATASOURCE)
        for i, (expr, legend) in enumerate(queries)
    ]


def _timeseries(
    ids: _Ids,
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str = "short",
    width: int = 8,
    stacked: bool = False,
    bars: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(8)
        .span(width)
        .min(0)
        .fill_opacity(40 if stacked or bars else 10)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .targets(_targets(queries))
    )
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS)
    return panel


def _quantiles(metric: str, window: str = LATENCY_WINDOW, label: str = "") -> list[Query]:
    """p50/p90/p99 of a histogram, one series per value of ``label`` if given."""
    by = f"le, {label}" if label else "le"
    suffix = f" {{{{{label}}}}}" if label else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket[{window}])))",
            f"p{round(float(q) * 100)}{suffix}",
        )
        for q in QUANTILES
    ]


def _variables() -> list[cogbuilder.Builder[model.VariableModel]]:
    namespaces = "label_values(elastrain_gpus_requested, namespace)"
    return [
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        dash.QueryVariable("namespace")
        .label("Namespace")
        .description("Namespaces with TrainingJobs (the operator's elastrain_gpus_requested).")
        .datasource(DATASOURCE)
        .query(namespaces)
        .definition(namespaces)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(text="All", value="$__all"))
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC),
    ]


def _jobs(d: dash.Dashboard, ids: _Ids) -> dash.Dashboard:
    return (
        d.with_row(dash.Row("Jobs and pods").id(ids()))
        .with_panel(
            _timeseries(
                ids,
                "Jobs by phase",
                "TrainingJobs the operator knows, by status.phase (whole cluster: the gauge "
                "has no namespace label).",
                [("sum by (phase) (elastrain_jobs)", "{{phase}}")],
                stacked=True,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Pods by role and phase",
                "Pods of TrainingJobs by replica type and pod phase (whole cluster).",
                [("sum by (role, phase) (elastrain_pods)", "{{role}} {{phase}}")],
                stacked=True,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "GPUs requested",
                "GPUs requested by the TrainingJob pods of each namespace.",
                [(f"sum by (namespace) (elastrain_gpus_requested{{{NS}}})", "{{namespace}}")],
                stacked=True,
            )
        )
    )


def _training(d: dash.Dashboard, ids: _Ids) -> dash.Dashboard:
    def per_job(metric: str) -> str:
        return f"max by (namespace, trainingjob) ({metric}{{{WORKER}}})"

    job = "{{namespace}}/{{trainingjob}}"
    needs = " From the trainers' metrics: needs trainerMetrics.podMonitor.enabled."
    return (
        d.with_row(dash.Row("Training").id(ids()))
        .with_panel(
            _timeseries(
                ids,
                "Progress",
                "Steps done over the job's --steps target." + needs,
                [
                    (
                        f"{per_job('elastrain_trainer_step')} / "
                        f"{per_job('elastrain_trainer_total_steps')}",
                        job,
                    )
                ],
                unit="percentunit",
                width=12,
            ).max(1)
        )
        .with_panel(
            _timeseries(
                ids,
                "Loss",
                "Latest training loss of each job." + needs,
                [(per_job("elastrain_trainer_loss"), job)],
                width=12,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Throughput",
                "Samples per second of each job, all ranks together." + needs,
                [(per_job("elastrain_trainer_samples_per_second"), job)],
                unit="short",
                width=12,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "World size",
                "Ranks (DDP) or workers (parameter server) training together: an elastic "
                "job's size as it scales." + needs,
                [(per_job("elastrain_trainer_world_size"), job)],
                width=12,
            )
        )
    )


def _events(d: dash.Dashboard, ids: _Ids) -> dash.Dashboard:
    def increase(metric: str, by: str) -> str:
        return f"sum by ({by}) (increase({metric}{{{NS}}}[$__rate_interval]))"

    return (
        d.with_row(dash.Row("Restarts, failures and scaling").id(ids()))
        .with_panel(
            _timeseries(
                ids,
                "Restarts",
                "Entries into Restarting, by reason; each counts against the job's backoffLimit.",
                [
                    (
                        increase("elastrain_jobs_restarted_total", "namespace, reason"),
                        "{{namespace}} {{reason}}",
                    )
                ],
                bars=True,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Failures",
                "Jobs that turned Failed, by reason.",
                [
                    (
                        increase("elastrain_jobs_failed_total", "namespace, reason"),
                        "{{namespace}} {{reason}}",
                    )
                ],
                bars=True,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Scale events",
                "Changes of a job's replica counts (kubectl scale, an HPA, an edit), by direction.",
                [
                    (
                        increase("elastrain_job_scale_events_total", "namespace, direction"),
                        "{{namespace}} {{direction}}",
                    )
                ],
                bars=True,
            )
        )
    )


def _latencies(d: dash.Dashboard, ids: _Ids) -> dash.Dashboard:
    window = f" Quantiles over {LATENCY_WINDOW} windows."
    return (
        d.with_row(dash.Row("Latencies").id(ids()))
        .with_panel(
            _timeseries(
                ids,
                "Time to Running",
                "From a job's creation to its first Running, and to its first pod." + window,
                [
                    *_quantiles("elastrain_job_time_to_running_seconds"),
                    (
                        "histogram_quantile(0.9, sum by (le) "
                        f"(rate(elastrain_job_to_pod_creation_seconds_bucket[{LATENCY_WINDOW}])))",
                        "p90 to first pod",
                    ),
                ],
                unit="s",
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Pod replacement time",
                "From a pod's failure (or disruption) to its replacement created, back-off "
                "included, by replica type." + window,
                _quantiles("elastrain_pod_replacement_seconds", label="role"),
                unit="s",
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Scale duration",
                "From a scale command to every pod of the new size running." + window,
                _quantiles("elastrain_job_scale_duration_seconds"),
                unit="s",
            )
        )
    )


def _operator_up(ids: _Ids) -> stat.Panel:
    return (
        stat.Panel()
        .id(ids())
        .title("Operator up")
        .description(
            "Operator targets Prometheus scrapes successfully (the ElastrainOperatorDown "
            "alert's selector). 0: no TrainingJob is being reconciled."
        )
        .datasource(DATASOURCE)
        .height(8)
        .span(4)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .thresholds(
            dash.ThresholdsConfig()
            .mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(value=None, color="red"), model.Threshold(1, "green")])
        )
        # `or vector(0)`: no target at all reads 0 (red), not "No data".
        .targets(_targets([(f"sum({promql.OPERATOR_UP}) or vector(0)", "up")]))
    )


def _operator(d: dash.Dashboard, ids: _Ids) -> dash.Dashboard:
    process = f"{{{promql.OPERATOR_JOB_MATCHERS}}}"
    return (
        d.with_row(dash.Row("Operator").id(ids()))
        .with_panel(_operator_up(ids))
        .with_panel(
            _timeseries(
                ids,
                "Reconcile errors",
                "Reconciles that failed and were retried with back-off, by error class.",
                [
                    (
                        "sum by (error) (rate(elastrain_reconcile_errors_total[$__rate_interval]))",
                        "{{error}}",
                    )
                ],
                unit="ops",
                width=10,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Reconcile duration",
                "One reconcile: observe, plan, apply (API calls included).",
                _quantiles("elastrain_reconcile_duration_seconds", "$__rate_interval"),
                unit="s",
                width=10,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Work queue depth",
                "Job keys waiting for a reconcile worker; a queue that keeps growing needs "
                "more --workers.",
                [("max(elastrain_workqueue_depth)", "depth")],
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Operator memory",
                "Resident memory of each operator process.",
                [(f"process_resident_memory_bytes{process}", "{{pod}} {{instance}}")],
                unit="bytes",
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Operator CPU",
                "CPU seconds per second used by each operator process.",
                [
                    (
                        f"rate(process_cpu_seconds_total{process}[$__rate_interval])",
                        "{{pod}} {{instance}}",
                    )
                ],
                unit="short",
            )
        )
    )


def build() -> model.Dashboard:
    """The dashboard model: variables, then one row per concern."""
    ids = _Ids()
    d = (
        dash.Dashboard("Elastrain")
        .uid(UID)
        .description(
            "Elastrain TrainingJobs: jobs, pods and GPUs, training progress, restarts and "
            "scaling, latencies, and the operator's health. Generated by "
            "`python -m elastrain_dev.dashboard`; see docs/monitoring.md."
        )
        .tags(["elastrain", "kubernetes", "training"])
        .editable()
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .variables(_variables())
    )
    for section in (_jobs, _training, _events, _latencies, _operator):
        d = section(d, ids)
    return d.build()


def as_dict() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (what :func:`render` writes), parsed."""
    parsed: dict[str, Any] = json.loads(render())
    return parsed


def render() -> str:
    """The dashboard file's exact text: sorted keys and a final newline, so diffs are stable."""
    return JSONEncoder(sort_keys=True, indent=2).encode(build()) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dashboard (or with ``--check`` only compare); return 1 if it was stale."""
    parser = argparse.ArgumentParser(prog="elastrain_dev.dashboard", description=__doc__)
    parser.add_argument("--output", type=Path, default=OUTPUT, help="file to write")
    parser.add_argument(
        "--check", action="store_true", help="only say whether the file is up to date"
    )
    args = parser.parse_args(argv)
    text = render()
    current = args.output.read_text() if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is stale: run python -m elastrain_dev.dashboard", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(promql.dashboard_queries(json.loads(text)))} queries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
