"""Run one cluster for the bench in a process of its own, until SIGTERM.

    python -m bench.serve_cluster --kind embedded|real --state-dir DIR --kubeconfig PATH
        [--nodes N] [--no-agent] [--bin-dir DIR]

The issue asks for the API server, the operator and the driver in three processes, so that
none of them steals the others' event loop or shows up in the others' CPU time. This launcher
is the API server's side: the embedded sandbox (API server, scheduler, garbage collector and,
unless ``--no-agent``, the node agent, all on one asyncio loop in this process), or the real
control plane (etcd, kube-apiserver, kube-controller-manager and kube-scheduler as children of
this process, with the node agent in this process as their kubelet).

It prints one JSON line once the cluster serves: ``{"url": ..., "audit_log": ...}``.

Who sent a request is what P2 needs (the operator's requests, not the driver's or the node
agent's), and both servers are made to record it:

* **real**: kube-apiserver writes an audit log (``audit_log``, JSON lines with ``user`` and
  ``userAgent``). The policy leaves out the control plane's own components (the scheduler,
  the controller manager and its per-controller service accounts), so the log costs the API
  server only for the requests the bench reads.
* **embedded**: the sandbox's request log has no client field, so this launcher wraps the
  server's recorder to note each request's ``User-Agent`` as well, served at
  ``GET /sandbox/bench-requests?since=SEQ``. Only this process is instrumented; the sandbox's
  code is unchanged.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: None
    users: [system:kube-scheduler, system:kube-controller-manager, system:apiserver]
  - level: None
    userGroups: [system:serviceaccounts:kube-system, system:nodes]
  - level: Metadata
"""

# Pods a node takes (the kubelet's default ``maxPods``); the bench sizes the cluster by it.
PODS_PER_NODE = 110


def _serve_embedded(args: argparse.Namespace, stopping: threading.Event) -> None:
    from aiohttp import web
    from elastrain_sandbox.embedded import Sandbox

    sb = Sandbox(
        nodes=args.nodes,
        state_dir=args.state_dir,
        agent=not args.no_agent,
        kubeconfig_path=args.kubeconfig,
        history=200_000,
    )
    server = sb.runtime.server
    records: list[tuple[int, str, str, str, int]] = []
    lock = threading.Lock()
    recorder = server._record

    def record(request: web.Request, parsed: Any, status: int) -> None:
        recorder(request, parsed, status)
        agent = request.headers.get("User-Agent", "")
        with lock:
            seq = len(records) + 1
            records.append((seq, agent, parsed.verb, parsed.resource_label, status))

    # An instance attribute shadows the method for this server object only.
    vars(server)["_record"] = record

    async def bench_requests(request: web.Request) -> web.StreamResponse:
        since = int(request.query.get("since", "0"))
        with lock:
            items = records[since:]
            last = len(records)
        body = {
            "next": last,
            "items": [
                {"seq": s, "agent": a, "verb": v, "resource": r, "status": c}
                for s, a, v, r, c in items
            ],
        }
        return web.json_response(body)

    server.admin_routes[("GET", "bench-requests")] = bench_requests
    sb.start()
    try:
        print(json.dumps({"url": sb.url, "audit_log": None}), flush=True)
        stopping.wait()
    finally:
        sb.stop()


def _serve_real(args: argparse.Namespace, stopping: threading.Event) -> None:
    from elastrain_sandbox.realcluster import RealCluster

    args.state_dir.mkdir(parents=True, exist_ok=True)
    policy = args.state_dir / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    audit_log = args.state_dir / "audit.log"
    cluster = RealCluster(
        args.state_dir,
        args.kubeconfig,
        args.bin_dir,
        nodes=args.nodes if not args.no_agent else 0,
        agent=not args.no_agent,
        apiserver_args=(
            f"--audit-policy-file={policy}",
            f"--audit-log-path={audit_log}",
            "--audit-log-format=json",
            # Blocking mode (the default) writes each event as its request completes, so the
            # log is complete the moment the bench reads it; batching would hold events back.
            "--audit-log-mode=blocking",
        ),
    )
    try:
        cluster.start()
        print(json.dumps({"url": cluster.url, "audit_log": str(audit_log)}), flush=True)
        stopping.wait()
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_cluster")
    parser.add_argument("--kind", choices=("embedded", "real"), required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--no-agent", action="store_true")
    parser.add_argument("--bin-dir", type=Path)
    args = parser.parse_args(argv)
    stopping = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if args.kind == "real":
        if args.bin_dir is None:
            print("error: --kind real needs --bin-dir", file=sys.stderr)
            return 2
        _serve_real(args, stopping)
    else:
        _serve_embedded(args, stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
