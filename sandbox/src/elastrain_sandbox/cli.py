"""``python -m elastrain_sandbox``: run the sandbox, or operate on a running one's nodes.

Serve::

    python -m elastrain_sandbox --kubeconfig PATH [--nodes N] [--gpus-per-node G]
        [--cpus-per-node C] [--memory-per-node M] [--port P] [--state-dir DIR]
        [--eviction-timeout S] [--no-agent] [--control-plane embedded|real]

``--control-plane real`` runs etcd, kube-apiserver, kube-controller-manager and kube-scheduler
(``make control-plane``) with the node agent as the kubelet of ``--nodes`` nodes; it
prints ``sandbox ready: <url>`` once serving, and on SIGINT/SIGTERM stops the node agent (which
kills every process it started) and the server, removes a temporary state dir, and exits 0.

Nodes of a running sandbox (through its ``/sandbox/nodes`` admin endpoint)::

    python -m elastrain_sandbox node add NAME --kubeconfig PATH [--gpus G] [--cpus C] [--memory M]
    python -m elastrain_sandbox node remove|ready|not-ready|unreachable NAME --kubeconfig PATH
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

NODE_ACTIONS = ("add", "remove", "ready", "not-ready", "unreachable")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", type=Path, help="where to write (serve) or read (node) the kubeconfig"
    )
    parser.add_argument("--nodes", type=int, default=2, help="simulated nodes at start (default 2)")
    parser.add_argument("--gpus-per-node", type=int, default=0, help="nvidia.com/gpu per node")
    parser.add_argument("--cpus-per-node", type=int, default=8, help="cpu per node (default 8)")
    parser.add_argument("--memory-per-node", default="64Gi", help="memory per node (default 64Gi)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free)")
    parser.add_argument("--state-dir", type=Path, help="logs and pod state (default: a temp dir)")
    parser.add_argument(
        "--eviction-timeout",
        type=int,
        default=30,
        help="seconds pods tolerate a NotReady/unreachable node before eviction (default 30)",
    )
    parser.add_argument("--no-agent", action="store_true", help="schedule pods but never run them")
    parser.add_argument(
        "--control-plane",
        choices=("embedded", "real"),
        default="embedded",
        help="embedded: the Python API server (default); real: etcd, kube-apiserver, "
        "kube-controller-manager and kube-scheduler built by `make control-plane`",
    )
    parser.add_argument(
        "--control-plane-bin",
        type=Path,
        help="where the real control plane's binaries are (default: $ELASTRAIN_CONTROL_PLANE_BIN)",
    )
    sub = parser.add_subparsers(dest="sandbox_command", metavar="{node}")
    node = sub.add_parser(
        "node", help="add, remove or flip readiness of a node of a running sandbox"
    )
    node.add_argument("action", choices=NODE_ACTIONS)
    node.add_argument("name")
    node.add_argument("--kubeconfig", type=Path, default=argparse.SUPPRESS)
    node.add_argument("--gpus", type=int)
    node.add_argument("--cpus", type=int)
    node.add_argument("--memory")


def run(args: argparse.Namespace) -> int:
    if args.kubeconfig is None:
        print("error: --kubeconfig is required", file=sys.stderr)
        return 2
    if getattr(args, "sandbox_command", None) == "node":
        return _node(args)
    if args.control_plane == "real":
        return _serve_real(args)
    return asyncio.run(_serve(args))


def _serve_real(args: argparse.Namespace) -> int:
    """Run the real control plane until SIGINT/SIGTERM; ``sandbox ready: <url>`` once ready."""
    import logging

    from elastrain_sandbox.controlplane.cluster import ControlPlaneError, default_bin_dir
    from elastrain_sandbox.realcluster import RealCluster

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    bin_dir = args.control_plane_bin or default_bin_dir()
    if bin_dir is None:
        print(
            "error: the real control plane needs --control-plane-bin or "
            "$ELASTRAIN_CONTROL_PLANE_BIN (run `make control-plane`)",
            file=sys.stderr,
        )
        return 2
    own_state = args.state_dir is None
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="elastrain-control-plane-"))
    stopping = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # Without the agent there is no kubelet: no nodes either, pods stay Pending.
    cluster = RealCluster(
        state_dir,
        args.kubeconfig,
        bin_dir,
        nodes=args.nodes if not args.no_agent else 0,
        cpus_per_node=args.cpus_per_node,
        memory_per_node=args.memory_per_node,
        gpus_per_node=args.gpus_per_node,
        agent=not args.no_agent,
    )
    try:
        try:
            cluster.start()
        except (ControlPlaneError, RuntimeError, TimeoutError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"sandbox ready: {cluster.url}", flush=True)
        stopping.wait()
    finally:
        cluster.stop()
        if own_state:
            shutil.rmtree(state_dir, ignore_errors=True)
    return 0


async def _serve(args: argparse.Namespace) -> int:
    import logging

    from elastrain_sandbox.runtime import SandboxConfig, SandboxRuntime

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    own_state = args.state_dir is None
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="elastrain-sandbox-"))
    config = SandboxConfig(
        state_dir=state_dir,
        kubeconfig_path=args.kubeconfig,
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        cpus_per_node=args.cpus_per_node,
        memory_per_node=args.memory_per_node,
        port=args.port,
        eviction_timeout=args.eviction_timeout,
        agent=not args.no_agent,
    )
    runtime = SandboxRuntime(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start()
        print(f"sandbox ready: {runtime.url}", flush=True)
        await stop.wait()
    finally:
        await runtime.stop()
        if own_state:  # a temporary state dir goes with the sandbox; --state-dir is kept
            shutil.rmtree(state_dir, ignore_errors=True)
    return 0


def _node(args: argparse.Namespace) -> int:
    from elastrain_sandbox.kubeconfig import server_url

    base = server_url(args.kubeconfig) + "/sandbox/nodes"
    if args.action == "add":
        body = {"name": args.name}
        for key in ("gpus", "cpus", "memory"):
            if getattr(args, key) is not None:
                body[key] = getattr(args, key)
        req = urllib.request.Request(base, data=json.dumps(body).encode(), method="POST")
        req.add_header("Content-Type", "application/json")
    elif args.action == "remove":
        req = urllib.request.Request(f"{base}/{args.name}", method="DELETE")
    else:
        req = urllib.request.Request(f"{base}/{args.name}/{args.action}", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
    except urllib.error.HTTPError as err:
        try:
            message = json.loads(err.read()).get("message", str(err))
        except ValueError:
            message = str(err)
        print(f"Error from server: {message}", file=sys.stderr)
        return 1
    except urllib.error.URLError as err:
        print(f"error: cannot reach the sandbox at {base}: {err.reason}", file=sys.stderr)
        return 1
    print(f"node/{args.name} {args.action if args.action != 'add' else 'added'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m elastrain_sandbox", description=__doc__.splitlines()[0]
    )
    configure(parser)
    return int(run(parser.parse_args(argv)) or 0)
