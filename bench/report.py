"""The bench's results: one JSON document, a Markdown table and a PNG chart.

Layout of the JSON (docs/performance.md documents every key)::

    {"schema": 1, "started": ..., "duration_s": ..., "machine": {...}, "settings": {...},
     "control_plane": "real", "primary": "real",          # whose figures the top level holds
     "p1": {...}, "p2": {...}, "p3": {...}, "p4": {...}, "p5": {...}, "goals": [...],
     "runs": {"embedded": {same keys}, "real": {same keys}}}

A figure that could not be measured is ``null`` with ``<key>_why`` beside it. Goals are
printed, never asserted: each is PASS, MISS, or n/a (the figure is null).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.kube import PODS_PER_JOB

MB_PER_MIB = 1.048576


def put(d: dict[str, Any], key: str, value: Any, why: str) -> None:
    """``d[key] = value``, and ``d[key + '_why'] = why`` when the value is missing."""
    d[key] = value
    if value is None:
        d[f"{key}_why"] = why


def _point(growth: list[dict[str, Any]], jobs: int) -> dict[str, Any]:
    return next((p for p in growth if p.get("jobs") == jobs), {})


def _err(stage: dict[str, Any], default: str) -> str:
    return str(stage.get("error") or stage.get("why") or default)


def assemble_run(
    kind: str,
    args: argparse.Namespace,
    growth: list[dict[str, Any]],
    agent: dict[str, Any],
    peer: dict[str, Any] | None,
    p5: dict[str, Any] | None,
    primary: str,
) -> dict[str, Any]:
    """P1-P5 for one control plane from its stages' raw results."""
    top = _point(growth, args.jobs)
    life = agent.get("lifecycle") or {"error": agent.get("error", "not run")}
    steady = agent.get("steady") or {"error": agent.get("error", "not run")}
    fails = agent.get("failures") or {"error": agent.get("error", "not run")}
    p1: dict[str, Any] = {"jobs": args.jobs, "pods": args.jobs * PODS_PER_JOB}
    why = _err(top, "growth point not run")
    put(p1, "pods_per_s", top.get("pods_per_s"), why)
    put(p1, "all_pods_s", top.get("all_pods_s"), why)
    put(p1, "raw_client_pods_per_s", top.get("raw_pods_per_s"), why)
    put(p1, "ratio_to_raw_client", top.get("ratio_to_raw_client"), why)
    p1["running_jobs"] = args.running_jobs
    put(p1, "all_running_s", life.get("all_running_s"), _err(life, "not all jobs seen Running"))
    put(p1, "pods_per_s_with_agent", life.get("pods_per_s"), _err(life, "lifecycle not run"))
    p1["jobs_seen_running"] = life.get("jobs_seen_running")
    p1["note"] = (
        f"pods_per_s, all_pods_s and the raw client: {args.jobs} jobs on a cluster without the "
        f"node agent (pods created and scheduled, never started); all_running_s: "
        f"{args.running_jobs} jobs on a cluster with the node agent, whose pods really run "
        "(5 processes per job: this 2-core machine starts about 10-20 pods/s)"
    )
    if kind == "real":
        peer = peer or {"pods_per_s": None, "why": "the peer was skipped (--no-peer)"}
        put(p1, "peer", peer.get("pods_per_s"), str(peer.get("why") or "no figure"))
        p1["peer_detail"] = peer
    else:
        put(p1, "peer", None, "the peer runs on the real control plane only")
    p1["growth"] = growth

    p2: dict[str, Any] = {"jobs": args.running_jobs}
    economy = life.get("p2") or {}
    why = _err(life, "lifecycle not run")
    put(p2, "requests_per_job", economy.get("requests_per_job"), why)
    put(p2, "ratio_to_minimum", economy.get("ratio_to_minimum"), why)
    for key in ("minimum_per_job", "minimum", "per_job_by_request", "operator_errors"):
        if key in economy:
            p2[key] = economy[key]
    p2["all_clients_in_window"] = economy.get("all_clients")
    if life.get("complete") is False:
        p2["incomplete_why"] = life.get("why")

    p3: dict[str, Any] = {"rate_per_s": args.p3_rate, "jobs": steady.get("jobs")}
    why = _err(steady, "steady-rate stage not run")
    for key in ("create_to_pods_p50_s", "create_to_pods_p99_s", "create_to_running_p50_s"):
        put(p3, key, steady.get(key), why)
    put(
        p3,
        "create_to_running_p99_s",
        steady.get("create_to_running_p99_s"),
        str(steady.get("create_to_running_why") or why),
    )
    why = _err(fails, "failure stage not run")
    put(p3, "failure_to_replacement_s", fails.get("failure_to_replacement_p50_s"), why)
    put(p3, "failure_to_replacement_p99_s", fails.get("failure_to_replacement_p99_s"), why)
    p3["failure_samples"] = fails.get("samples")
    p3["deletion_to_replacement_p50_s"] = fails.get("deletion_to_replacement_p50_s")
    p3["operator_metric_replacement_mean_s"] = fails.get("operator_metric_mean_s")

    p4: dict[str, Any] = {"max_jobs": args.jobs}
    why = _err(top, "growth point not run")
    put(p4, "rss_mib_idle", top.get("rss_mib_idle"), why)
    put(p4, "rss_mib_at_max_jobs", top.get("rss_mib"), why)
    why = _err(life, "lifecycle not run")
    put(p4, "cpu_s_per_job", life.get("operator_cpu_s_per_job"), why)
    put(p4, "apiserver_cpu_s_per_job", life.get("apiserver_cpu_s_per_job"), why)
    p4["lifecycle_jobs"] = args.running_jobs
    p4["creation_cpu_s_per_job"] = top.get("operator_cpu_s_per_job")
    p4["creation_apiserver_cpu_s_per_job"] = top.get("apiserver_cpu_s_per_job")
    p4["raw_client_apiserver_cpu_s_per_job"] = top.get("raw_apiserver_cpu_s_per_job")
    p4["lifecycle_reconciles_per_job"] = life.get("reconciles_per_job")
    p4["creation_reconciles_per_job"] = top.get("reconciles_per_job")
    p4["apiserver_processes"] = "the sandbox process (API server, controllers, node agent)"
    if kind == "real":
        p4["apiserver_processes"] = "kube-apiserver + etcd"

    p5_out: dict[str, Any] = {}
    if p5 is None:
        p5 = {"why": f"P5 runs once per bench, on the primary control plane ({primary})"}
        if args.p5 == "none":
            p5 = {"why": "P5 was skipped (--p5 none)"}
    for key in (
        "step_time_ratio_to_plain_ddp",
        "kill_to_training_s",
        "scale_to_training_s",
        "checkpoint_save_s",
        "checkpoint_load_s",
    ):
        put(p5_out, key, p5.get(key), str(p5.get(f"{key}_why") or p5.get("why") or "no figure"))
    p5_out["detail"] = {k: v for k, v in p5.items() if not k.endswith("_why")}

    run: dict[str, Any] = {
        "control_plane": kind,
        "p1": p1,
        "p2": p2,
        "p3": p3,
        "p4": p4,
        "p5": p5_out,
    }
    run["goals"] = goals(run)
    run["stages"] = {k: v for k, v in agent.items() if k != "lifecycle"} | {
        "lifecycle": {k: v for k, v in life.items() if k != "p2"}
    }
    return run


def skipped_run(kind: str, why: str) -> dict[str, Any]:
    run: dict[str, Any] = {"control_plane": kind, "skipped": why}
    for section in ("p1", "p2", "p3", "p4", "p5"):
        run[section] = {}
    for section, key in GOAL_KEYS:
        put(run[section], key, None, why)
    run["goals"] = goals(run)
    return run


# (label, section, key, goal text, test)
Goal = tuple[str, str, str, str, Callable[[float, dict[str, Any]], bool | None]]
GOALS: list[Goal] = [
    ("P1 rate vs raw client", "p1", "ratio_to_raw_client", ">= 0.67", lambda v, _: v >= 0.67),
    (
        "P1 vs the peer (pods/s)",
        "p1",
        "pods_per_s",
        "> peer",
        lambda v, run: None if run["p1"].get("peer") is None else v > run["p1"]["peer"],
    ),
    ("P2 requests vs minimum", "p2", "ratio_to_minimum", "<= 1.2", lambda v, _: v <= 1.2),
    ("P3 create-to-pods p99 (s)", "p3", "create_to_pods_p99_s", "<= 1", lambda v, _: v <= 1.0),
    (
        "P4 RSS at max jobs (MiB)",
        "p4",
        "rss_mib_at_max_jobs",
        "<= 200 MB (190.7 MiB)",
        lambda v, _: v * MB_PER_MIB <= 200,
    ),
    ("P4 CPU-s per job", "p4", "cpu_s_per_job", "<= 0.05", lambda v, _: v <= 0.05),
    (
        "P5 step time vs plain DDP",
        "p5",
        "step_time_ratio_to_plain_ddp",
        "<= 1.03",
        lambda v, _: v <= 1.03,
    ),
    ("P5 kill to training (s)", "p5", "kill_to_training_s", "<= 15", lambda v, _: v <= 15),
    ("P5 scale to training (s)", "p5", "scale_to_training_s", "<= 15", lambda v, _: v <= 15),
]
GOAL_KEYS = [(section, key) for _, section, key, _, _ in GOALS]


def goals(run: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for label, section, key, text, test in GOALS:
        value = run.get(section, {}).get(key)
        row: dict[str, Any] = {"goal": label, "figure": f"{section}.{key}", "target": text}
        row["value"] = value
        if value is None:
            row["status"] = "n/a"
            row["why"] = run.get(section, {}).get(f"{key}_why", "not measured")
        else:
            verdict = test(float(value), run)
            if verdict is None:
                row["status"] = "n/a"
                row["why"] = run.get("p1", {}).get("peer_why", "no comparison")
            else:
                row["status"] = "PASS" if verdict else "MISS"
        out.append(row)
    return out


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "jobs": args.jobs,
        "growth_points": args.growth_points,
        "pods_per_job": PODS_PER_JOB,
        "running_jobs": args.running_jobs,
        "worker_sleep_s": args.worker_sleep,
        "p3_rate_per_s": args.p3_rate,
        "p3_seconds": args.p3_seconds,
        "failure_jobs": args.failure_jobs,
        "failure_seconds": args.failure_seconds,
        "operator_kube_qps": args.kube_qps,
        "operator_kube_burst": args.kube_burst,
        "operator_args": args.operator_args,
        "raw_client_concurrency": args.raw_concurrency,
        "driver_create_concurrency": args.create_concurrency,
        "p5": args.p5,
    }


def assemble(
    runs: dict[str, dict[str, Any]],
    *,
    primary: str,
    machine: dict[str, Any],
    settings: dict[str, Any],
    started: datetime,
    duration_s: float,
) -> dict[str, Any]:
    main = runs.get(primary, {})
    result: dict[str, Any] = {
        "schema": 1,
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(duration_s, 1),
        "machine": machine,
        "control_plane": primary,
        "primary": primary,
        "settings": settings,
    }
    for section in ("p1", "p2", "p3", "p4", "p5", "goals"):
        result[section] = main.get(section, {} if section != "goals" else [])
    result["runs"] = runs
    return result


# ---------------------------------------------------------------------- Markdown
def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def markdown(result: dict[str, Any]) -> str:
    runs: dict[str, dict[str, Any]] = result["runs"]
    kinds = [k for k in ("embedded", "real") if k in runs]
    m = result["machine"]
    lines = [
        f"# Elastrain bench, {result['started']}",
        "",
        f"Machine: {m.get('hostname')}, {m.get('cpus')} CPUs ({m.get('cpu_model')}), "
        f"{m.get('memory_gib')} GiB, Linux {m.get('kernel')}, Python {m.get('python')}; "
        f"load average at start {_load(m.get('loadavg_at_start'))}, at end "
        f"{_load(m.get('loadavg_at_end'))}. Whole run {result['duration_s']:.0f} s. "
        f"Top-level figures: the {result['primary']} control plane.",
        "",
        "| goal | target | " + " | ".join(kinds) + " |",
        "|---|---|" + "---|" * len(kinds),
    ]
    for i, (label, _section, _key, target, _) in enumerate(GOALS):
        cells = []
        for kind in kinds:
            row = runs[kind]["goals"][i]
            cells.append(f"{_fmt(row['value'])} {row['status']}")
        lines.append(f"| {label} | {target} | " + " | ".join(cells) + " |")
    lines += ["", "| other figures | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for section, key, label in OTHER_FIGURES:
        cells = [_fmt(runs[k].get(section, {}).get(key)) for k in kinds]
        lines.append(f"| {label} (`{section}.{key}`) | " + " | ".join(cells) + " |")
    lines += ["", "Growth (no node agent; the raw client creates the same objects directly):", ""]
    lines.append(
        "| control plane | jobs | all pods (s) | pods/s | raw pods/s | ratio | "
        "operator CPU-s/job | API server CPU-s/job | operator RSS (MiB) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        for p in runs[kind].get("p1", {}).get("growth", []):
            if "error" in p:
                lines.append(f"| {kind} | {p['jobs']} | error: {p['error'][:80]} |||||||")
                continue
            lines.append(
                f"| {kind} | {p['jobs']} | {_fmt(p.get('all_pods_s'))} | "
                f"{_fmt(p.get('pods_per_s'))} | {_fmt(p.get('raw_pods_per_s'))} | "
                f"{_fmt(p.get('ratio_to_raw_client'))} | "
                f"{_fmt(p.get('operator_cpu_s_per_job'))} | "
                f"{_fmt(p.get('apiserver_cpu_s_per_job'))} | {_fmt(p.get('rss_mib'))} |"
            )
    notes = []
    for kind in kinds:
        for row in runs[kind]["goals"]:
            if row["status"] != "PASS":
                detail = row.get("why") or _miss_detail(row, runs[kind])
                notes.append(f"- {kind}, {row['goal']}: {row['status']}: {detail}")
    if notes:
        lines += ["", "Not passed, and the recorded reason:", "", *notes]
    return "\n".join(lines) + "\n"


OTHER_FIGURES = [
    ("p1", "pods_per_s", "P1 pods/s"),
    ("p1", "raw_client_pods_per_s", "P1 raw client pods/s"),
    ("p1", "peer", "P1 peer pods/s"),
    ("p1", "all_running_s", "P1 all jobs Running (s), with the agent"),
    ("p2", "requests_per_job", "P2 operator requests per job"),
    ("p3", "create_to_pods_p50_s", "P3 create-to-pods p50 (s)"),
    ("p3", "create_to_running_p50_s", "P3 create-to-Running p50 (s)"),
    ("p3", "create_to_running_p99_s", "P3 create-to-Running p99 (s)"),
    ("p3", "failure_to_replacement_s", "P3 failure-to-replacement p50 (s)"),
    ("p3", "failure_to_replacement_p99_s", "P3 failure-to-replacement p99 (s)"),
    ("p4", "rss_mib_idle", "P4 RSS idle (MiB)"),
    ("p4", "apiserver_cpu_s_per_job", "P4 API server CPU-s per job"),
    ("p5", "checkpoint_save_s", "P5 checkpoint save (s)"),
    ("p5", "checkpoint_load_s", "P5 checkpoint load (s)"),
]


def _load(values: Any) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "?"


def _miss_detail(row: dict[str, Any], run: dict[str, Any]) -> str:
    """A mechanical pointer for a MISS; docs/performance.md says what blocks each one."""
    figure = row["figure"]
    if figure == "p1.ratio_to_raw_client":
        p1 = run["p1"]
        return (
            f"{_fmt(p1.get('pods_per_s'))} pods/s against the raw client's "
            f"{_fmt(p1.get('raw_client_pods_per_s'))} pods/s"
        )
    if figure == "p2.ratio_to_minimum":
        top = list((run["p2"].get("per_job_by_request") or {}).items())[:4]
        return "per job: " + ", ".join(f"{k} {v}" for k, v in top)
    return f"{_fmt(row['value'])} against {row['target']}"


# ---------------------------------------------------------------------- chart and files
def chart(result: dict[str, Any], path: Path) -> str | None:
    """Cost against the number of jobs: seconds to all pods (operator and raw client), CPU
    seconds per job (operator, API server) and the operator's RSS. None, or why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"no chart: {exc} (make install adds matplotlib)"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for kind, run in result["runs"].items():
        points = [p for p in run.get("p1", {}).get("growth", []) if "all_pods_s" in p]
        if not points:
            continue
        jobs = [p["jobs"] for p in points]
        axes[0].plot(jobs, [p["all_pods_s"] for p in points], "o-", label=f"{kind}: operator")
        axes[0].plot(jobs, [p["raw_s"] for p in points], "x--", label=f"{kind}: raw client")
        axes[1].plot(
            jobs, [p["operator_cpu_s_per_job"] for p in points], "o-", label=f"{kind}: operator"
        )
        axes[1].plot(
            jobs,
            [p["apiserver_cpu_s_per_job"] for p in points],
            "s:",
            label=f"{kind}: API server",
        )
        axes[1].plot(
            jobs,
            [p["raw_apiserver_cpu_s_per_job"] for p in points],
            "x--",
            label=f"{kind}: API server, raw client",
        )
        axes[2].plot(jobs, [p["rss_mib"] for p in points], "o-", label=kind)
    axes[2].axhline(200 / MB_PER_MIB, color="red", lw=0.8, ls="--", label="goal: 200 MB")
    titles = (
        "seconds until all pods exist",
        "CPU seconds per job (creation)",
        "operator RSS (MiB) with N jobs",
    )
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title)
        ax.set_xlabel(f"jobs (x{PODS_PER_JOB} pods)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_ylim(bottom=0)
    fig.suptitle(f"Elastrain bench {result['started']} ({result['machine'].get('hostname')})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def write(result: dict[str, Any], out: Path) -> list[Path]:
    """``<timestamp>-<machine>.{json,md,png}`` and the same as ``latest.*``.

    Only ``latest.*`` is committed (the timestamped files are git-ignored history of this
    machine), so ``latest.json`` names ``latest.png`` as its chart."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", str(result["machine"].get("hostname") or "machine"))
    stem = out / f"{stamp}-{host}"
    png = stem.with_suffix(".png")
    why = chart(result, png)
    result["chart"] = None if why else png.name
    if why:
        result["chart_why"] = why
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    paths = [stem.with_suffix(".json"), stem.with_suffix(".md")]
    if not why:
        paths.append(png)
    for path in paths:
        latest = out / f"latest{path.suffix}"
        latest.write_bytes(path.read_bytes())
    if not why:
        result["chart"] = "latest.png"
        (out / "latest.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    return paths
