"""``python -m elastrain_dev.demo`` (``make demo``): flags, one run start to finish, ``--stop``.

The run is one straight line (start the stack, submit, watch, summarise) inside a ``finally``
that stops everything it started unless ``--keep`` asks otherwise, so that a failure, Ctrl-C or
SIGTERM never leaves a sandbox or operator behind. Failures end with the reason and the log
files to read, and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from elastrain_dev.demo import jobs as demo_jobs
from elastrain_dev.demo import procs
from elastrain_dev.demo.cluster import Cluster
from elastrain_dev.demo.kubectl import Kubectl, KubectlError
from elastrain_dev.demo.report import JobResult
from elastrain_dev.demo.report import table as summary_table
from elastrain_dev.demo.scenario import (
    FAULT_AT_FRACTION,
    DemoFailed,
    FaultRecord,
    Scenario,
    fault_target,
)
from elastrain_dev.demo.stack import Stack, sweep_containers
from elastrain_dev.demo.target import Target, TargetError
from elastrain_dev.demo.view import View
from elastrain_dev.demo.workspace import Workspace, WorkspaceError

# The whole demo must fit in 5 minutes on a 2-core machine; the jobs get what start-up leaves.
DEFAULT_TIMEOUT = 280.0
SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXPECTED = (DemoFailed, procs.ProcessFailed, KubectlError, TargetError, WorkspaceError)


def build_parser() -> argparse.ArgumentParser:
    """The demo's flags."""
    parser = argparse.ArgumentParser(
        prog="python -m elastrain_dev.demo",
        description="Run Elastrain end to end: sandbox, operator, a DDP job and a parameter-server "
        "job, a worker killed mid-run, recovery, summary. With IMAGE and KUBECONFIG set, runs on "
        "that cluster instead of the sandbox (see docs/demo.md).",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the sandbox and operator running to explore (stop with --stop)",
    )
    parser.add_argument(
        "--stop", action="store_true", help="stop what a --keep run left running, then exit"
    )
    parser.add_argument(
        "--non-interactive",
        action="store_true",
        help="print a line per change instead of redrawing (automatic when stdout is not a TTY)",
    )
    parser.add_argument(
        "--result-json", type=Path, metavar="PATH", help="write the machine-readable outcome here"
    )
    parser.add_argument("--namespace", default="default", help="namespace for the demo's jobs")
    parser.add_argument(
        "--demo-dir",
        type=Path,
        metavar="DIR",
        help="folder for the sandbox state, logs and pid file (default: .demo/ in the checkout)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up if the jobs have not succeeded by then (default {DEFAULT_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--control-plane",
        choices=("embedded", "real"),
        default="embedded",
        help="the sandbox's control plane: embedded (the Python API server) or real "
        "(kube-apiserver and friends, built by `make control-plane`)",
    )
    parser.add_argument(
        "--control-plane-bin",
        type=Path,
        metavar="DIR",
        help="the real control plane's binaries (default: $ELASTRAIN_CONTROL_PLANE_BIN)",
    )
    parser.add_argument(
        "--external-operator",
        action="store_true",
        help="real cluster only: an operator is already installed there (Helm chart); "
        "do not start one locally",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        workspace = Workspace.find(args.demo_dir)
        if args.stop:
            return stop_kept(workspace)
        target = Target.from_env(workspace, os.environ, args.namespace)
    except (TargetError, WorkspaceError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    if target.sandbox and os.geteuid() != 0:
        print(
            "demo: the sandbox needs root to give every pod its own network namespace (two jobs "
            "bind the same ports); run `sudo make demo`, or run on a real cluster with IMAGE and "
            "KUBECONFIG set (docs/demo.md)",
            file=sys.stderr,
        )
        return 2
    if args.external_operator and target.sandbox:
        print(
            "demo: --external-operator needs a real cluster (IMAGE and KUBECONFIG)", file=sys.stderr
        )
        return 2
    interactive = (
        sys.stdout.isatty() and os.environ.get("TERM") != "dumb" and not args.non_interactive
    )
    return Run(workspace, target, args, View(interactive=interactive)).execute()


def stop_kept(workspace: Workspace) -> int:
    """``--stop``: stop the processes a ``--keep`` run recorded (the operator first)."""
    recorded = procs.load(workspace.pids_file)
    running = [p for p in recorded if p.alive()]
    for process in reversed(running):
        forced = procs.stop(process)
        print(f"stopped the {process.name} (pid {process.pid}){' with SIGKILL' if forced else ''}")
    if not running:
        print("nothing to stop: no demo is running")
    workspace.pids_file.unlink(missing_ok=True)
    return 0


class Run:
    """One execution of the demo."""

    def __init__(
        self, workspace: Workspace, target: Target, args: argparse.Namespace, view: View
    ) -> None:
        self.ws = workspace
        self.target = target
        self.args = args
        self.view = view
        self.started = time.monotonic()
        self.kubectl = Kubectl(
            binary=workspace.kubectl(),
            kubeconfig=str(target.kubeconfig),
            namespace=target.namespace,
            shown_binary=workspace.relative(Path(workspace.kubectl())),
            shown_kubeconfig=workspace.relative(target.kubeconfig),
        )
        self.stack = Stack(
            workspace,
            target,
            self.kubectl,
            view,
            start_operator=not args.external_operator,
            control_plane=args.control_plane,
            control_plane_bin=args.control_plane_bin,
        )
        self.scenario: Scenario | None = None
        self.results: list[JobResult] = []
        self.jobs: list[demo_jobs.DemoJob] = []
        self.error: str | None = None

    def execute(self) -> int:
        """Run the demo; always leaves the machine as it found it unless ``--keep``."""
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        interrupted = False
        try:
            self._run()
        except EXPECTED as exc:
            self.error = str(exc)
        except KeyboardInterrupt:
            self.error, interrupted = "interrupted", True
        finally:
            signal.signal(signal.SIGTERM, previous)
            self._finish()
        if self.error is None:
            return 0
        return 130 if interrupted else 1

    def _run(self) -> None:
        self._stop_leftover_run()
        self.ws.reset()
        self.jobs = demo_jobs.load(self.ws.manifests)
        local = (
            "the real Kubernetes control plane built from its Go modules"
            if self.stack.control_plane == "real"
            else "the embedded Kubernetes API server"
        )
        where = (
            f"on the sandbox ({local}, with the node agent as kubelet)"
            if self.target.sandbox
            else f"on the cluster of {self.target.kubeconfig}, trainer image {self.target.image}"
        )
        ddp, victim = fault_target(self.jobs)
        jobs = " and ".join(f"{job.name} ({job.description})" for job in self.jobs)
        self.view.say(f"Elastrain demo {where}.")
        self.view.say(f"The operator will run {jobs}.")
        self.view.say(
            f"{FAULT_AT_FRACTION:.0%} into {ddp.name}, the demo kills the training process of "
            f"{victim}; the job recovers from its checkpoint."
        )
        self.stack.start()
        procs.save(self.ws.pids_file, self.stack.processes)
        cluster = Cluster(str(self.target.kubeconfig), self.target.namespace)
        self.scenario = Scenario(
            workspace=self.ws,
            target=self.target,
            kubectl=self.kubectl,
            cluster=cluster,
            view=self.view,
            jobs=self.jobs,
            deadline=self.started + self.args.timeout,
            interval=0.5 if self.view.interactive else 1.0,
        )
        try:
            self.scenario.submit()
            self.scenario.watch()
            self.view.finish()
            self.results = self.scenario.results()
        finally:
            self.scenario.close()
            cluster.close()
        self._check_results()

    def _stop_leftover_run(self) -> None:
        running = [p for p in procs.load(self.ws.pids_file) if p.alive()]
        if running:
            self.view.say("stopping the demo an earlier --keep run left running")
            for process in reversed(running):
                procs.stop(process)

    def _check_results(self) -> None:
        """Fail unless the system reported what the demo set out to show."""
        _, killed = self._fault()
        if killed and not (
            killed.resumed_from_step or killed.trainer_restarts or killed.restart_count
        ):
            raise DemoFailed(f"{killed.name} recorded no restart after its worker was killed")
        for result in self.results:
            if result.summary is None:
                raise DemoFailed(f"no trainer summary line in the logs of {result.name}'s workers")
            first, final = result.summary.get("first_loss"), result.summary.get("final_loss")
            if first is None or final is None or not final < first:
                raise DemoFailed(f"{result.name}'s loss did not go down ({first} -> {final})")

    def _finish(self) -> None:
        self.view.finish()
        started = list(self.stack.processes)
        keep = self.args.keep and bool(started)
        if self.error is None:
            self._print_summary()
        else:
            self._print_failure()
        if keep or not started:
            leftovers: list[int] = []
        else:
            # A second Ctrl-C or SIGTERM must not abandon the shutdown (bounded by the stop
            # grace periods) halfway and leave a sandbox with running pods behind.
            previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in SHUTDOWN_SIGNALS}
            try:
                leftovers = self._shutdown(started)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        if self.args.result_json:
            self._write_result(started, leftovers)
        if keep:
            self._print_kept()

    def _shutdown(self, started: list[procs.Background]) -> list[int]:
        """Stop the stack, then verify no container process outlived it; returns any that did."""
        self.view.say(f"shutting down: {', '.join(p.name for p in reversed(started))}")
        forced = self.stack.stop()
        self.ws.pids_file.unlink(missing_ok=True)
        if forced:
            print(f"warning: {', '.join(forced)} ignored SIGTERM and had to be killed")
        if not self.target.sandbox:
            delete = self.kubectl.shown("delete", "tj", *(job.name for job in self.jobs))
            self.view.say(f"stopped the operator; the jobs stay on the cluster: {delete}")
            return []
        leftovers = sweep_containers(self.scenario.container_ids if self.scenario else ())
        if leftovers:
            message = f"container processes outlived the sandbox (killed now): {leftovers}"
            print(f"demo FAILED: {message}", file=sys.stderr)
            self.error = self.error or message
        else:
            self.view.say("stopped; no process of the demo is left running")
        return leftovers

    def _print_summary(self) -> None:
        elapsed = time.monotonic() - self.started
        out = ["", f"Both jobs succeeded; the demo took {elapsed:.0f}s.", ""]
        out += [f"  {line}" for line in summary_table(self.results)]
        record, killed = self._fault()
        if record and killed and killed.summary:
            out += [
                "",
                f"  {record.pod}'s training process was killed at step {record.at_step}.",
                f"  {killed.name} resumed from its step-{killed.resumed_from_step} checkpoint "
                f"and finished all {killed.summary['steps']} steps.",
            ]
        if self.args.keep:
            out += ["", "Look around (everything is still running):"]
        else:
            out += ["", "Look around: run `make demo KEEP=1` to keep it all running, then:"]
        out += [f"  {cmd}" for cmd in self._look_around_commands()]
        out += ["", "Logs:", *(f"  {line}" for line in self._log_locations())]
        print("\n".join(out), flush=True)

    def _fault(self) -> tuple[FaultRecord | None, JobResult | None]:
        """The fault the demo injected, and the result of the job it hit."""
        record = self.scenario.fault_record if self.scenario else None
        killed = next((r for r in self.results if record and r.name == record.job), None)
        return record, killed

    def _look_around_commands(self) -> list[str]:
        record, killed = self._fault()
        commands = [
            self.kubectl.shown("get", "tj"),
            self.kubectl.shown("get", "pods", "-o", "wide"),
        ]
        commands += [self.kubectl.shown("describe", "tj", r.name) for r in self.results[:1]]
        # The rank-0 pod's log has the progress lines, the resume and the summary; the killed
        # pod's has torchrun reporting the SIGKILL and restarting the worker.
        pods = list(killed.worker_summaries) if killed else []
        pods += [record.pod] if record and record.pod not in pods else []
        commands += [self.kubectl.shown("logs", pod) for pod in pods]
        return commands

    def _print_failure(self) -> None:
        out = [
            "",
            f"demo FAILED: {self.error}",
            "Where to look:",
            *(f"  {line}" for line in self._log_locations()),
        ]
        done = {r.name for r in (self.scenario.results() if self.scenario else [])}
        unfinished = [job.name for job in self.jobs if job.name not in done]
        if self.target.sandbox and unfinished:
            out.append("Latest log of each pod of the unfinished jobs:")
            for name in unfinished:
                logs = self.ws.latest_pod_logs(self.target.namespace, f"{name}-")
                out += [f"  {self.ws.relative(path)}" for path in logs]
        print("\n".join(out), file=sys.stderr, flush=True)

    def _print_kept(self) -> None:
        print(
            "\nThe sandbox and operator are still running (pids in "
            f"{self.ws.relative(self.ws.pids_file)}). Stop them with:\n"
            "  .venv/bin/python -m elastrain_dev.demo --stop",
            flush=True,
        )

    def _log_locations(self) -> list[str]:
        ws = self.ws
        lines = [f"operator: {ws.relative(ws.operator_log)}"]
        if self.target.sandbox:
            lines.append(f"sandbox:  {ws.relative(ws.sandbox_log)}")
            lines.append(
                f"pods:     {ws.relative(ws.pod_logs)}/<namespace>/<pod>/<container>/<restart>.log"
            )
        else:
            lines.append(f"pods:     {self.kubectl.shown('logs')} <pod>")
        return lines

    def _write_result(self, started: list[procs.Background], leftovers: list[int]) -> None:
        record, _ = self._fault()
        payload: dict[str, Any] = {
            "ok": self.error is None,
            "error": self.error,
            "target": "sandbox" if self.target.sandbox else "cluster",
            "namespace": self.target.namespace,
            "elapsed_seconds": round(time.monotonic() - self.started, 1),
            "fault": asdict(record) if record else None,
            "jobs": [r.to_json() for r in self.results],
            "processes": [asdict(p) for p in started],
            "leftover_processes": leftovers,
            "logs": {
                "operator": str(self.ws.operator_log),
                "sandbox": str(self.ws.sandbox_log) if self.target.sandbox else None,
            },
        }
        self.args.result_json.parent.mkdir(parents=True, exist_ok=True)
        self.args.result_json.write_text(json.dumps(payload, indent=2) + "\n")


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM (CI cancelling, ``timeout``) unwinds like Ctrl-C, so ``finally`` cleans up."""
    raise KeyboardInterrupt
