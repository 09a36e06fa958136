"""``make bench``: P1-P5 of issue #14 on both control planes, written to ``bench/results/``.

    python -m bench.run [--jobs 300] [--control-plane both|embedded|real]
                        [--control-plane-bin DIR] [--out bench/results]

Benchmarks are not tests: nothing here asserts a time. Each figure is printed with its goal
and PASS or MISS, and written as JSON (``<timestamp>-<machine>.json`` and ``latest.json``),
a Markdown table (``.md``) and a chart of cost against job count (``.png``). A stage that
cannot run (no real control plane, a module not written yet, a failure) leaves its figures
``null`` with a ``<key>_why`` beside them, and the rest still runs.

What runs, per control plane (docs/performance.md explains each figure):

1. **Growth** (P1, P4's RSS): for each job count in ``--growth`` and ``--jobs``, a fresh
   cluster *without* the node agent (5N sleeping pods are too many processes for this
   machine at N=1000), the raw client's limit, then the operator's run.
2. **Lifecycle** (P1's "until Running", P2, P4's CPU per job): ``--running-jobs`` jobs on a
   fresh cluster *with* the node agent, from creation to TTL deletion; then on the same
   cluster **P3**: jobs at ``--p3-rate`` per second, and a failing worker's replacements.
3. The **peer** (real control plane only, ``bench/peer.py``) and **P5** (``bench/p5_trainer.py``,
   once per bench on the primary control plane unless ``--p5 both``).

The API server, the operator and this driver are three processes (``bench.serve_cluster``,
``python -m elastrain operator``, this one).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import shlex
import shutil
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, scenarios
from bench.kube import PODS_PER_JOB, client, install_crd
from bench.procs import ClusterProcess, OperatorProcess

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
DEFAULT_JOBS = 300
GROWTH = (100, 300)
P5_KEYS = (
    "step_time_ratio_to_plain_ddp",
    "kill_to_training_s",
    "scale_to_training_s",
    "checkpoint_save_s",
    "checkpoint_load_s",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="P1's job count (default 300)")
    p.add_argument(
        "--growth",
        default=",".join(map(str, GROWTH)),
        help="more job counts for the growth chart (default 100,300; 0 or '' for none)",
    )
    p.add_argument(
        "--control-plane", choices=("both", "embedded", "real"), default="both", dest="cp"
    )
    p.add_argument("--control-plane-bin", type=Path, help="the real control plane's binaries")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--running-jobs", type=int, default=40, help="lifecycle jobs (with agent)")
    p.add_argument(
        "--worker-sleep",
        type=float,
        default=25.0,
        help="lifecycle workers' sleep: long enough that every job's pods run at once",
    )
    p.add_argument("--p3-rate", type=float, default=10.0, help="P3 jobs per second")
    p.add_argument("--p3-seconds", type=float, default=4.0, help="P3 seconds of creations")
    p.add_argument("--failure-jobs", type=int, default=4)
    p.add_argument("--failure-seconds", type=float, default=12.0)
    p.add_argument("--kube-qps", type=float, default=1000.0, help="the operator's --kube-qps")
    p.add_argument("--kube-burst", type=int, default=2000, help="the operator's --kube-burst")
    p.add_argument(
        "--operator-args",
        default="",
        help="more flags for the operator, e.g. '--workers 16' (shlex-split)",
    )
    p.add_argument("--raw-concurrency", type=int, default=32)
    p.add_argument("--create-concurrency", type=int, default=16)
    p.add_argument(
        "--p5",
        choices=("primary", "both", "none"),
        default="primary",
        help="where P5 runs (about 3 minutes each)",
    )
    p.add_argument("--no-peer", action="store_true", help="skip the peer comparison")
    p.add_argument("--workdir", type=Path, help="keep logs here (default: a temporary dir)")
    p.add_argument(
        "--stages",
        default="growth,agent",
        help="which of growth (P1, P4 RSS) and agent (lifecycle, P3) to run (default both)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record the operator with py-spy into DIR/<control plane>-<stage>.txt "
        "(py-spy competes for the CPU: never for published figures)",
    )
    args = p.parse_args(argv)
    args.growth_points = sorted(
        {int(x) for x in str(args.growth).split(",") if x.strip() and int(x) > 0} | {args.jobs}
    )
    return args


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:2000]


# ---------------------------------------------------------------------- one cluster + operator
@contextmanager
def stack(
    args: argparse.Namespace, kind: str, workdir: Path, *, nodes: int, agent: bool, name: str
) -> Iterator[tuple[ClusterProcess, OperatorProcess]]:
    """A fresh cluster in its own process, the CRD, and the operator in its own process."""
    cluster = ClusterProcess(
        kind,
        workdir,
        nodes=nodes,
        agent=agent,
        bin_dir=args.control_plane_bin if kind == "real" else None,
    ).start()
    try:

        async def prepare() -> None:
            api = client(cluster.kubeconfig)
            try:
                await install_crd(api)
            finally:
                await api.close()

        asyncio.run(prepare())
        profile = None
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            profile = args.profile / f"{kind}-{name}.txt"
        operator = OperatorProcess(
            cluster.kubeconfig,
            workdir / "operator.log",
            args.kube_qps,
            args.kube_burst,
            profile=profile,
            extra=shlex.split(args.operator_args),
        ).start()
        try:
            yield cluster, operator
        finally:
            operator.stop()
    finally:
        cluster.stop()


def run_growth(args: argparse.Namespace, kind: str, root: Path) -> list[dict[str, Any]]:
    points = []
    for jobs in args.growth_points:
        log(f"{kind}: P1 growth point, {jobs} jobs ({jobs * PODS_PER_JOB} pods), no node agent")
        workdir = root / kind / f"growth-{jobs}"
        try:
            nodes = 0 if kind == "real" else scenarios.nodes_for(jobs * PODS_PER_JOB + 10)
            with stack(args, kind, workdir, nodes=nodes, agent=False, name=f"growth-{jobs}") as (
                cluster,
                operator,
            ):
                point = asyncio.run(
                    scenarios.growth_point(
                        cluster,
                        operator,
                        jobs,
                        raw_concurrency=args.raw_concurrency,
                        create_concurrency=args.create_concurrency,
                    )
                )
            log(
                f"{kind}: {jobs} jobs: all pods in {point['all_pods_s']}s "
                f"({point['pods_per_s']} pods/s); raw client {point['raw_pods_per_s']} pods/s; "
                f"ratio {point['ratio_to_raw_client']}; operator RSS {point['rss_mib']} MiB"
            )
        except Exception as exc:
            log(f"{kind}: growth point {jobs} failed: {_why(exc)}")
            traceback.print_exc()
            point = {"jobs": jobs, "error": _why(exc)}
        points.append(point)
    return points


def run_agent_cluster(args: argparse.Namespace, kind: str, root: Path) -> dict[str, Any]:
    """Lifecycle, steady rate and failures on one cluster with the node agent."""
    out: dict[str, Any] = {}
    most = max(args.running_jobs, round(args.p3_rate * args.p3_seconds)) * PODS_PER_JOB
    workdir = root / kind / "agent"
    try:
        nodes = scenarios.nodes_for(most + 10)
        with stack(args, kind, workdir, nodes=nodes, agent=True, name="agent") as (
            cluster,
            operator,
        ):
            out["lifecycle"] = _stage(
                f"{kind}: lifecycle of {args.running_jobs} jobs with the node agent",
                lambda: scenarios.lifecycle(
                    cluster,
                    operator,
                    args.running_jobs,
                    sleep_s=args.worker_sleep,
                    create_concurrency=args.create_concurrency,
                    timeout=120 + args.running_jobs * 3.0,
                ),
            )
            out["steady"] = _stage(
                f"{kind}: P3 at {args.p3_rate:g} jobs/s for {args.p3_seconds:g}s",
                lambda: scenarios.steady(
                    cluster,
                    operator,
                    rate=args.p3_rate,
                    seconds=args.p3_seconds,
                    timeout=120 + args.p3_rate * args.p3_seconds * 2,
                ),
            )
            out["failures"] = _stage(
                f"{kind}: P3 failures, {args.failure_jobs} jobs for {args.failure_seconds:g}s",
                lambda: scenarios.failures(
                    cluster, operator, jobs=args.failure_jobs, seconds=args.failure_seconds
                ),
            )
    except Exception as exc:
        log(f"{kind}: the agent cluster failed: {_why(exc)}")
        traceback.print_exc()
        out.setdefault("error", _why(exc))
    return out


def _stage(title: str, fn: Callable[[], Any]) -> dict[str, Any]:
    log(title)
    started = time.monotonic()
    try:
        result = dict(asyncio.run(fn()))
    except Exception as exc:
        log(f"  failed: {_why(exc)}")
        traceback.print_exc()
        return {"error": _why(exc)}
    result["stage_s"] = round(time.monotonic() - started, 1)
    log("  " + json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}))
    return result


# ---------------------------------------------------------------------- peer and P5
def _module(name: str) -> Any:
    """``bench/<name>.py``, imported lazily: written by other engineers, it may not exist."""
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))  # for modules that import their siblings by bare name
    return importlib.import_module(f"bench.{name}")


def run_peer(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    log(f"real: the peer with {args.jobs} jobs (bench/peer.py)")
    try:
        peer = _module("peer")
        workdir = root / "real" / "peer"
        workdir.mkdir(parents=True, exist_ok=True)
        result = dict(peer.run(workdir, args.jobs, args.control_plane_bin))
    except Exception as exc:
        log(f"  peer: {_why(exc)}")
        return {"pods_per_s": None, "why": _why(exc)}
    log("  peer: " + json.dumps(result, default=str))
    return result


def run_p5(args: argparse.Namespace, kind: str, root: Path) -> dict[str, Any]:
    log(f"{kind}: P5 (bench/p5_trainer.py)")
    try:
        p5 = _module("p5_trainer")
        workdir = root / kind / "p5"
        workdir.mkdir(parents=True, exist_ok=True)
        bin_dir = args.control_plane_bin if kind == "real" else None
        result = dict(p5.run(workdir, kind, bin_dir))
    except Exception as exc:
        log(f"  P5: {_why(exc)}")
        return dict.fromkeys(P5_KEYS) | {f"{k}_why": _why(exc) for k in P5_KEYS}
    log("  P5: " + json.dumps(result, default=str))
    return result


# ---------------------------------------------------------------------- the whole run
def machine() -> dict[str, Any]:
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    return {
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": list(os.getloadavg()),
    }


def control_planes(args: argparse.Namespace) -> list[str]:
    return ["embedded", "real"] if args.cp == "both" else [args.cp]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    info = machine()
    kinds = control_planes(args)
    skipped: dict[str, str] = {}
    if "real" in kinds and (
        args.control_plane_bin is None or not (args.control_plane_bin / "kube-apiserver").exists()
    ):
        skipped["real"] = (
            "no real control plane binaries (--control-plane-bin; `make control-plane` builds "
            "them and needs Go)"
        )
        kinds.remove("real")
    primary = "real" if "real" in kinds else (kinds[0] if kinds else "embedded")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="elastrain-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    log(f"control planes: {', '.join(kinds) or 'none'} (primary {primary}); work dir {root}")
    runs: dict[str, dict[str, Any]] = {}
    stages = {s.strip() for s in str(args.stages).split(",")}
    for kind in kinds:
        growth = run_growth(args, kind, root) if "growth" in stages else []
        agent = run_agent_cluster(args, kind, root) if "agent" in stages else {}
        peer = run_peer(args, root) if kind == "real" and not args.no_peer else None
        p5 = None
        if args.p5 == "both" or (args.p5 == "primary" and kind == primary):
            p5 = run_p5(args, kind, root)
        runs[kind] = report.assemble_run(kind, args, growth, agent, peer, p5, primary)
    for kind, why in skipped.items():
        runs[kind] = report.skipped_run(kind, why)
    info["loadavg_at_end"] = list(os.getloadavg())
    result = report.assemble(
        runs,
        primary=primary,
        machine=info,
        settings=report.settings(args),
        started=started,
        duration_s=time.monotonic() - t0,
    )
    paths = report.write(result, args.out)
    print()
    print(report.markdown(result))
    log("wrote " + ", ".join(str(p) for p in paths))
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
