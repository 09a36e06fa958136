"""The measurements, each against a running cluster and operator (see ``bench.run``).

* ``growth_point``: P1 at one job count on a cluster *without* the node agent (pods are
  created and scheduled, never started): how fast the operator turns N TrainingJobs into
  5N pods, against the raw client creating the same objects on the same API server (the
  API-bound limit); the operator's RSS at that size and its CPU per job.
* ``lifecycle``: on a cluster *with* the node agent, N jobs whose workers sleep, through their
  whole life: created, every pod running, Succeeded, deleted by the TTL. P1's "until every job
  reports Running", P2's requests per job and P4's CPU seconds per job come from it.
* ``steady``: P3, jobs created at a fixed rate: create-to-pods and create-to-Running.
* ``failures``: P3, a worker that fails every second (exit 137 under ``ExitCode``, restart
  back-off 0): from its failure seen on the API to its replacement's creation seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import procstat
from bench.kube import (
    PODS_PER_JOB,
    RAW_AGENT,
    TJ_PATH,
    Jobs,
    Pods,
    Watch,
    client,
    create_jobs,
    create_paced,
    delete_namespace,
    job_body,
    namespace,
    poll,
    raw_create,
    raw_objects,
)
from bench.procs import ClusterProcess, Mark, OperatorProcess, tally

Obj = dict[str, Any]
# What one job's lifecycle needs at least (issue #14): its Service, its pods, one status
# write per phase transition (none -> Created -> Running -> Succeeded), the parameter server
# stopped when the job succeeds (a ps never exits on its own), and the TTL's delete.
MIN_TRANSITIONS = 3
MIN_DELETES = 2


def quantile(values: list[float], q: float) -> float | None:
    """The q-quantile by linear interpolation between closest ranks (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


async def _cpu(cluster: ClusterProcess, operator: OperatorProcess) -> dict[str, float]:
    def read() -> dict[str, float]:
        return {"operator": procstat.cpu_seconds(operator.pid), **cluster.cpu_seconds()}

    return await asyncio.to_thread(read)


async def _mark(cluster: ClusterProcess) -> Mark:
    return await asyncio.to_thread(cluster.mark)


async def _requests(
    cluster: ClusterProcess, start: Mark, end: Mark
) -> list[tuple[str, str, str, int]]:
    return await asyncio.to_thread(cluster.requests, start, end)


async def _settle(operator: OperatorProcess, quiet: float = 1.0, timeout: float = 30.0) -> None:
    """Wait until the operator has used under 2% of a core for ``quiet`` seconds: its
    queued reconciles are done, so the CPU and requests counted so far are the whole cost."""
    deadline = time.monotonic() + timeout
    last = procstat.cpu_seconds(operator.pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet)
        now = procstat.cpu_seconds(operator.pid)
        if now - last < 0.02 * quiet:
            return
        last = now


async def _reconciles(operator: OperatorProcess) -> float:
    """Reconciles so far (the operator's ``elastrain_reconcile_duration_seconds_count``): the
    per-job count shows how many times each job was re-planned."""
    samples = await asyncio.to_thread(operator.metrics)
    return sum(v for _, v in samples.get("elastrain_reconcile_duration_seconds_count", []))


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in after}


def _apiserver_cpu(cpu: dict[str, float]) -> float:
    """The API server's side: the sandbox process (API server, controllers and agent on one
    loop) or kube-apiserver plus etcd."""
    return round(sum(v for k, v in cpu.items() if k != "operator"), 2)


async def _watch_pods(api: Any, ns: str) -> tuple[Pods, Watch]:
    pods = Pods()
    watch = await Watch(api, f"/api/v1/namespaces/{ns}/pods", pods.on_event).start()
    return pods, watch


# ---------------------------------------------------------------------- P1 growth
async def growth_point(
    cluster: ClusterProcess,
    operator: OperatorProcess,
    jobs: int,
    *,
    raw_concurrency: int,
    create_concurrency: int,
) -> dict[str, Any]:
    """One point of P1's growth curve on a cluster without the node agent."""
    api = client(cluster.kubeconfig)
    raw_api = client(cluster.kubeconfig, RAW_AGENT)
    try:
        out: dict[str, Any] = {"jobs": jobs, "pods": jobs * PODS_PER_JOB}
        out["rss_mib_idle"] = round(procstat.rss_mib(operator.pid), 1)
        samples, service = await _warm_up(api)
        # The limit: the same objects, created directly, on the same server, first (the
        # operator's run then finds a warm server, never a slower one).
        # Timed as the operator's run is: from the first request to the last pod seen on
        # the driver's watch (which costs the API server the same in both runs).
        ns_raw = await namespace(api, "raw")
        objects = raw_objects(samples, service, jobs)
        want = jobs * PODS_PER_JOB
        raw_pods, raw_watch = await _watch_pods(api, ns_raw)
        raw_cpu0 = await _cpu(cluster, operator)
        t0 = time.monotonic()
        out["raw_answers_s"] = round(await raw_create(raw_api, ns_raw, objects, raw_concurrency), 2)
        await poll(lambda: _true(len(raw_pods.by_uid) >= want), 60, "the raw client's pods", 0.1)
        raw_s = max(p.added for p in raw_pods.by_uid.values()) - t0
        raw_cpu = _delta(await _cpu(cluster, operator), raw_cpu0)
        await raw_watch.stop()
        out["raw_s"] = round(raw_s, 2)
        out["raw_pods_per_s"] = round(want / raw_s, 1)
        out["raw_apiserver_cpu_s"] = _apiserver_cpu(raw_cpu)
        out["raw_cleanup_ok"] = await delete_namespace(api, ns_raw)

        ns = await namespace(api, "p1")
        pods, watch = await _watch_pods(api, ns)
        reconciles0 = await _reconciles(operator)
        cpu0, mark0 = await _cpu(cluster, operator), await _mark(cluster)
        sent: dict[str, float] = {}
        t0 = time.monotonic()
        await create_jobs(
            api,
            ns,
            (job_body(f"j{i}", "exec sleep 3600") for i in range(jobs)),
            sent,
            create_concurrency,
        )
        out["submit_s"] = round(time.monotonic() - t0, 2)
        await poll(lambda: _true(len(pods.by_uid) >= want), 60 + want * 0.2, f"{want} pods", 0.1)
        all_pods = max(p.added for p in pods.by_uid.values()) - t0
        out["all_pods_s"] = round(all_pods, 2)
        out["pods_per_s"] = round(want / all_pods, 1)
        out["ratio_to_raw_client"] = round(out["pods_per_s"] / out["raw_pods_per_s"], 3)
        await _settle(operator)
        out["rss_mib"] = round(procstat.rss_mib(operator.pid), 1)
        cpu = _delta(await _cpu(cluster, operator), cpu0)
        requests = await _requests(cluster, mark0, await _mark(cluster))
        await watch.stop()
        out["cpu_s"] = cpu
        out["operator_cpu_s_per_job"] = round(cpu["operator"] / jobs, 4)
        out["apiserver_cpu_s_per_job"] = round(_apiserver_cpu(cpu) / jobs, 4)
        out["raw_apiserver_cpu_s_per_job"] = round(out["raw_apiserver_cpu_s"] / jobs, 4)
        out["reconciles_per_job"] = round((await _reconciles(operator) - reconciles0) / jobs, 2)
        ops = tally(requests, "operator")
        out["operator_requests"] = dict(ops.most_common())
        out["operator_requests_per_job"] = round(
            sum(n for k, n in ops.items() if not k.startswith("watch")) / jobs, 2
        )
        return out
    finally:
        await api.close()
        await raw_api.close()


async def _true(value: bool) -> bool:
    return value


async def _warm_up(api: Any) -> tuple[dict[str, Obj], Obj]:
    """One job through the operator before anything is measured: the first reconcile's
    imports and caches are not a per-job cost. Its pods and Service, as the operator created
    them, are the raw client's templates."""
    ns = await namespace(api, "warm")
    pods, watch = await _watch_pods(api, ns)
    await create_jobs(api, ns, [job_body("warm", "exec sleep 3600", ttl=None)], {})
    await poll(lambda: _true(len(pods.samples) >= 2), 120, "the warm-up job's pods")
    service = await api.get(f"/api/v1/namespaces/{ns}/services/warm")
    await watch.stop()
    await api.request("DELETE", f"{TJ_PATH.format(ns=ns)}/warm")
    await delete_namespace(api, ns)
    return pods.samples, service


# ---------------------------------------------------------------------- lifecycle
async def lifecycle(
    cluster: ClusterProcess,
    operator: OperatorProcess,
    jobs: int,
    *,
    sleep_s: float,
    create_concurrency: int,
    timeout: float,
) -> dict[str, Any]:
    """N jobs through their whole life on a cluster that runs pods: P1 (until every job is
    Running), P2 (the operator's requests per job) and P4 (CPU seconds per job)."""
    api = client(cluster.kubeconfig)
    try:
        out: dict[str, Any] = {"jobs": jobs, "worker_sleep_s": sleep_s}
        out["rss_mib_idle"] = round(procstat.rss_mib(operator.pid), 1)
        await _warm_up(api)
        ns = await namespace(api, "life")
        pods, pod_watch = await _watch_pods(api, ns)
        states = Jobs()
        job_watch = await Watch(api, TJ_PATH.format(ns=ns), states.on_event).start()
        reconciles0 = await _reconciles(operator)
        cpu0, mark0 = await _cpu(cluster, operator), await _mark(cluster)
        sent: dict[str, float] = {}
        rss_max = 0.0
        t0 = time.monotonic()
        await create_jobs(
            api,
            ns,
            (job_body(f"l{i}", f"sleep {sleep_s:g}") for i in range(jobs)),
            sent,
            create_concurrency,
        )
        want = jobs * PODS_PER_JOB
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            rss_max = max(rss_max, procstat.rss_mib(operator.pid))
            if len(states.deleted) >= jobs and len(pods.by_uid) >= want and pods.live() == 0:
                break
            await asyncio.sleep(0.25)
        out["complete"] = len(states.deleted) >= jobs and pods.live() == 0
        if not out["complete"]:
            out["why"] = (
                f"after {timeout:.0f}s: {len(pods.by_uid)}/{want} pods created, "
                f"{len(states.running)}/{jobs} jobs seen Running, "
                f"{len(states.succeeded)} Succeeded, {len(states.deleted)} deleted, "
                f"{pods.live()} pods left"
            )
        if len(pods.by_uid) >= want:
            out["all_pods_s"] = round(max(p.added for p in pods.by_uid.values()) - t0, 2)
            out["pods_per_s"] = round(want / out["all_pods_s"], 1)
        out["jobs_seen_running"] = len(states.running)
        if len(states.running) >= jobs:
            out["all_running_s"] = round(max(states.running.values()) - t0, 2)
        running_pods = [p.running for p in pods.by_uid.values() if p.running is not None]
        if len(running_pods) >= want:
            out["all_pods_running_s"] = round(max(running_pods) - t0, 2)
        if states.deleted:
            out["all_deleted_s"] = round(max(states.deleted.values()) - t0, 2)
        await _settle(operator)
        cpu = _delta(await _cpu(cluster, operator), cpu0)
        requests = await _requests(cluster, mark0, await _mark(cluster))
        await pod_watch.stop()
        await job_watch.stop()
        out["rss_mib_max"] = round(rss_max, 1)
        out["cpu_s"] = cpu
        out["operator_cpu_s_per_job"] = round(cpu["operator"] / jobs, 4)
        out["apiserver_cpu_s_per_job"] = round(_apiserver_cpu(cpu) / jobs, 4)
        out["reconciles_per_job"] = round((await _reconciles(operator) - reconciles0) / jobs, 2)
        out["p2"] = _economy(requests, jobs)
        return out
    finally:
        await api.close()


def _economy(requests: list[tuple[str, str, str, int]], jobs: int) -> dict[str, Any]:
    """P2: the operator's requests per job against the lifecycle's minimum, by verb and
    resource. Watches are long-lived streams opened once per resource, not per job: counted,
    but left out of the per-job figure."""
    ops = tally(requests, "operator")
    per_job = sum(n for k, n in ops.items() if not k.startswith("watch ")) / jobs
    minimum = 1 + PODS_PER_JOB + MIN_TRANSITIONS + MIN_DELETES
    by_client = Counter(c for c, *_ in requests)
    errors = Counter(
        f"{verb} {resource} {code}"
        for c, verb, resource, code in requests
        if c == "operator" and code >= 400
    )
    return {
        "requests_per_job": round(per_job, 2),
        "minimum_per_job": minimum,
        "minimum": (
            f"1 service + {PODS_PER_JOB} pods + {MIN_TRANSITIONS} status writes "
            f"(Created, Running, Succeeded) + {MIN_DELETES} deletes (the ps stopped at "
            "success, the job at its TTL)"
        ),
        "ratio_to_minimum": round(per_job / minimum, 3),
        "per_job_by_request": {k: round(n / jobs, 3) for k, n in ops.most_common()},
        "operator_errors": dict(errors.most_common()),
        "all_clients": dict(by_client.most_common()),
    }


# ---------------------------------------------------------------------- P3
async def steady(
    cluster: ClusterProcess,
    operator: OperatorProcess,
    *,
    rate: float,
    seconds: float,
    timeout: float,
) -> dict[str, Any]:
    """Jobs created at ``rate`` per second for ``seconds``; per job, from its POST to its
    last pod's creation seen, and to its Running status seen. Their pods sleep until the
    stage deletes them, so every job reaches Running however far the node agent lags."""
    api = client(cluster.kubeconfig)
    try:
        count = max(1, round(rate * seconds))
        ns = await namespace(api, "steady")
        pods, pod_watch = await _watch_pods(api, ns)
        states = Jobs()
        job_watch = await Watch(api, TJ_PATH.format(ns=ns), states.on_event).start()
        sent: dict[str, float] = {}
        bodies = [job_body(f"s{i}", "exec sleep 3600", ttl=None) for i in range(count)]
        await create_paced(api, ns, bodies, rate, sent)
        with contextlib.suppress(TimeoutError):
            await poll(
                lambda: _true(len(states.running) >= count), timeout, "steady jobs Running", 0.25
            )
        complete = pods.job_complete_times()
        to_pods = [complete[j] - t for j, t in sent.items() if j in complete]
        to_running = [states.running[j] - t for j, t in sent.items() if j in states.running]
        await pod_watch.stop()
        await job_watch.stop()
        for body in bodies:  # the jobs first, or the operator replaces the pods deleted below
            await api.request("DELETE", f"{TJ_PATH.format(ns=ns)}/{body['metadata']['name']}")
        await delete_namespace(api, ns)
        out: dict[str, Any] = {
            "rate_per_s": rate,
            "jobs": count,
            "jobs_with_all_pods": len(to_pods),
            "jobs_seen_running": len(to_running),
            "create_to_pods_p50_s": _r(quantile(to_pods, 0.5)),
            "create_to_pods_p99_s": _r(quantile(to_pods, 0.99)),
            "create_to_running_p50_s": _r(quantile(to_running, 0.5)),
            "create_to_running_p99_s": _r(quantile(to_running, 0.99)),
        }
        if len(to_running) < count:
            out["create_to_running_why"] = (
                f"only {len(to_running)}/{count} jobs were seen Running within {timeout:.0f}s"
            )
        return out
    finally:
        await api.close()


FAILING_WORKER = 'case "$POD_NAME" in *-worker-0) sleep 1; exit 137;; *) exec sleep 3600;; esac'


async def failures(
    cluster: ClusterProcess, operator: OperatorProcess, *, jobs: int, seconds: float
) -> dict[str, Any]:
    """Worker 0 of each job exits 137 a second after it starts, under ``restartPolicy:
    ExitCode`` (137 is retryable: the pod is replaced) and restart back-off 0; for each
    failure, the time from the pod's ``Failed`` phase seen on the API to its replacement's
    creation seen, and from the failed pod's deletion seen (the operator must delete it
    before it can create a pod of the same name)."""
    api = client(cluster.kubeconfig)
    try:
        before = await asyncio.to_thread(operator.metrics)
        ns = await namespace(api, "fail")
        pods, watch = await _watch_pods(api, ns)
        bodies = [
            job_body(
                f"f{i}", FAILING_WORKER, worker_policy="ExitCode", ttl=None, backoff_limit=1000
            )
            for i in range(jobs)
        ]
        await create_jobs(api, ns, bodies, {})
        # The clock starts once every pod has run (the node agent may still be busy with an
        # earlier stage's pods); the failures before that are measured all the same.
        want = jobs * PODS_PER_JOB
        with contextlib.suppress(TimeoutError):
            await poll(
                lambda: _true(sum(1 for p in pods.by_uid.values() if p.running) >= want),
                120,
                "the failure jobs' pods running",
                0.25,
            )
        await asyncio.sleep(seconds)
        samples = pods.replacements()
        after = await asyncio.to_thread(operator.metrics)
        await watch.stop()
        for body in bodies:
            await api.request("DELETE", f"{TJ_PATH.format(ns=ns)}/{body['metadata']['name']}")
        await delete_namespace(api, ns)
        from_failure = [a for a, _ in samples]
        from_delete = [b for _, b in samples if b is not None]
        out: dict[str, Any] = {
            "jobs": jobs,
            "seconds": seconds,
            "samples": len(samples),
            "failure_to_replacement_p50_s": _r(quantile(from_failure, 0.5)),
            "failure_to_replacement_p99_s": _r(quantile(from_failure, 0.99)),
            "deletion_to_replacement_p50_s": _r(quantile(from_delete, 0.5)),
            "operator_metric_mean_s": _metric_mean(
                before, after, "elastrain_pod_replacement_seconds"
            ),
        }
        if not samples:
            out["why"] = f"no failed pod was replaced within {seconds:.0f}s"
        return out
    finally:
        await api.close()


def _metric_mean(
    before: dict[str, list[tuple[dict[str, str], float]]],
    after: dict[str, list[tuple[dict[str, str], float]]],
    name: str,
) -> float | None:
    """The mean of a histogram's new observations between two scrapes (all label sets)."""

    def total(samples: dict[str, list[tuple[dict[str, str], float]]], suffix: str) -> float:
        return sum(v for _, v in samples.get(name + suffix, []))

    count = total(after, "_count") - total(before, "_count")
    if count <= 0:
        return None
    return round((total(after, "_sum") - total(before, "_sum")) / count, 3)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def nodes_for(pods: int, per_node: int = 100) -> int:
    """Nodes for ``pods`` pods at ``per_node`` each (a node takes 110), at least two."""
    return max(2, -(-pods // per_node) + 1)


def workdir_for(root: Path, *parts: str) -> Path:
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
