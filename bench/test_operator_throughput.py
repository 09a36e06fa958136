"""How fast the operator turns many TrainingJobs into pods, and at what cost. Prints, never asserts.

    make bench                                   # 200 jobs x 5 workers
    ELASTRAIN_BENCH_JOBS=1000 make bench         # 1,000 x 5
    ELASTRAIN_BENCH_QPS=20 ELASTRAIN_BENCH_BURST=40 make bench   # the operator's defaults

The sandbox runs without its node agent: pods are scheduled but never started, so the figures
are the control plane's (operator + API server), not process start-up on this machine. The
operator's client-side rate limit is the ceiling on creations per second; the bench raises it
(default QPS 200 / burst 400, printed) so that it measures the operator, not the limiter.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from elastrain_sandbox.embedded import Sandbox
from operator_harness import TJ, Cluster, Operator, training_job
from sandbox_fixtures import Kubectl, wait_for


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Estimate a quantile from cumulative histogram buckets (as Prometheus' histogram_quantile)."""
    total = buckets[-1][1]
    if total == 0:
        return float("nan")
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * (
                (rank - lower_count) / width if width else 1
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def _post_job(url: str, namespace: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"{url}/apis/elastrain.dev/v1alpha1/namespaces/{namespace}/trainingjobs",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer elastrain-sandbox"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def test_many_jobs_to_pods(tmp_path: Path) -> None:
    jobs = int(_env("ELASTRAIN_BENCH_JOBS", 200))
    workers = int(_env("ELASTRAIN_BENCH_PODS", 5))
    qps, burst = _env("ELASTRAIN_BENCH_QPS", 200), int(_env("ELASTRAIN_BENCH_BURST", 400))
    with Sandbox(nodes=4, state_dir=tmp_path / "sandbox", agent=False) as sb:
        kubectl = Kubectl(sb)
        cluster = Cluster(sb, kubectl)
        cluster.install_crd()
        namespace = cluster.namespace("bench")
        operator = Operator(
            sb.kubeconfig_path,
            tmp_path / "operator.log",
            "--kube-qps",
            str(qps),
            "--kube-burst",
            str(burst),
        ).start()
        try:
            idle_rss = _rss_mib(operator.proc.pid) if operator.proc else float("nan")
            seq0 = sb.request_log.seq
            started = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda i: _post_job(
                            sb.url, namespace, training_job(f"b{i}", "sleep 1", workers=workers)
                        ),
                        range(jobs),
                    )
                )
            submitted = time.monotonic() - started
            expected = jobs * workers

            def all_children() -> bool:
                pods = sb.store.list("pods", namespace=namespace, copy=False).items
                services = sb.store.list("services", namespace=namespace, copy=False).items
                return len(pods) >= expected and len(services) >= jobs

            wait_for(all_children, timeout=max(600.0, expected / 2), interval=0.5, what="children")
            elapsed = time.monotonic() - started
            rss = _rss_mib(operator.proc.pid) if operator.proc else float("nan")
            requests = Counter(f"{r.verb} {r.resource}" for r in sb.request_log.since(seq0))
            samples = operator.metrics()
            buckets = sorted(
                (float(dict(labels)["le"]), value)
                for (name, labels), value in samples.items()
                if name == "elastrain_reconcile_duration_seconds_bucket"
            )
            created_jobs = len(sb.store.list(TJ, namespace=namespace, copy=False).items)
        finally:
            operator.kill()
            kubectl.close()
    print()
    print(f"operator bench: {jobs} jobs x {workers} workers, client QPS {qps:g} / burst {burst}")
    print(
        f"  jobs submitted in {submitted:.1f}s; "
        f"all {expected} pods + {jobs} services in {elapsed:.1f}s"
    )
    print(f"  throughput: {jobs / elapsed:.1f} jobs/s, {expected / elapsed:.1f} pods/s")
    print(f"  operator RSS: {idle_rss:.0f} MiB idle -> {rss:.0f} MiB with {created_jobs} jobs")
    reconciles = buckets[-1][1] if buckets else 0
    print(
        f"  reconciles: {reconciles:.0f}, duration p50 {_quantile(buckets, 0.5) * 1000:.1f} ms, "
        f"p99 {_quantile(buckets, 0.99) * 1000:.1f} ms (from histogram buckets)"
    )
    print("  API requests by verb and resource (create trainingjobs are the bench's own):")
    for key, count in sorted(requests.items(), key=lambda kv: -kv[1]):
        print(f"    {count:7d}  {key}")
