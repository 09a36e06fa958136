"""The bench's two child processes: the cluster (``bench.serve_cluster``) and the operator
(``python -m elastrain operator``), plus the server's record of who sent which request.

The driver (``bench.run``) is the third process. Each child gets its own log file under the
run's work directory, quoted when it fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from elastrain_sandbox.ports import free_port
from prometheus_client.parser import text_string_to_metric_families

from bench import procstat

REPO = Path(__file__).resolve().parents[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def client_of(user_agent: str) -> str:
    """Who sent a request, from its ``User-Agent``: the operator's two clients (kopf's
    watches and the official ``kubernetes`` client it sends its writes through), the bench's
    driver and raw client, the node agent, the control plane's components, or other."""
    if user_agent.startswith(("kopf/", "OpenAPI-Generator/")):
        return "operator"
    if user_agent.startswith("elastrain-bench-driver"):
        return "driver"
    if user_agent.startswith("elastrain-bench-raw"):
        return "raw"
    if user_agent.startswith("elastrain-sandbox-agent"):
        return "agent"
    if user_agent.startswith(("kube-", "kubectl")):
        return "control-plane"
    return "other"


@dataclass(frozen=True)
class Mark:
    """A point in the server's record: a sequence number (embedded) or a wall-clock time and
    a byte offset into the audit log (real)."""

    seq: int
    wall: datetime
    offset: int


class ClusterProcess:
    """One cluster in its own process; ``pids`` names the processes whose CPU is the API
    server's (the sandbox process; kube-apiserver and etcd)."""

    def __init__(
        self,
        kind: str,
        workdir: Path,
        *,
        nodes: int,
        agent: bool,
        bin_dir: Path | None,
    ) -> None:
        self.kind = kind
        self.workdir = workdir
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.log_path = workdir / "cluster.log"
        self.nodes = nodes
        self.agent = agent
        self.bin_dir = bin_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.audit_log: Path | None = None
        self.pids: dict[str, int] = {}

    def start(self, timeout: float = 180) -> ClusterProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable,
            "-m",
            "bench.serve_cluster",
            "--kind",
            self.kind,
            "--state-dir",
            str(self.workdir / "state"),
            "--kubeconfig",
            str(self.kubeconfig),
            "--nodes",
            str(self.nodes),
        ]
        if not self.agent:
            args.append("--no-agent")
        if self.bin_dir is not None:
            args += ["--bin-dir", str(self.bin_dir)]
        log: IO[bytes]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=REPO, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
            )
        line = self._ready_line(timeout)
        ready = json.loads(line)
        self.url = ready["url"]
        self.audit_log = Path(ready["audit_log"]) if ready.get("audit_log") else None
        if self.kind == "real":
            kids = procstat.children(self.proc.pid)
            self.pids = {k: v for k, v in kids.items() if k in ("kube-apiserver", "etcd")}
        else:
            self.pids = {"sandbox": self.proc.pid}
        return self

    def _ready_line(self, timeout: float) -> str:
        if self.proc is None or self.proc.stdout is None:
            raise RuntimeError("start() the cluster first")
        deadline = time.monotonic() + timeout
        os.set_blocking(self.proc.stdout.fileno(), False)
        buffer = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the cluster exited:\n{_tail(self.log_path)}")
            chunk = self.proc.stdout.read()
            if chunk:
                buffer += chunk
                if b"\n" in buffer:
                    return buffer.split(b"\n", 1)[0].decode()
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"the cluster did not start in {timeout:.0f}s:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, grace=120)

    def cpu_seconds(self) -> dict[str, float]:
        return {name: procstat.cpu_seconds(pid) for name, pid in self.pids.items()}

    # ------------------------------------------------------------------ the server's record
    def mark(self) -> Mark:
        if self.audit_log is not None:
            size = self.audit_log.stat().st_size if self.audit_log.exists() else 0
            return Mark(0, datetime.now(UTC), size)
        return Mark(self._bench_requests(None)["next"], datetime.now(UTC), 0)

    def requests(self, start: Mark, end: Mark) -> list[tuple[str, str, str, int]]:
        """Every request between two marks as ``(client, verb, resource, status)``.

        Embedded: the launcher's User-Agent record. Real: the audit log's lines that the API
        server wrote between the two marks' byte offsets (a request is logged when it
        completes)."""
        if self.audit_log is None:
            items = self._bench_requests(start.seq)["items"]
            return [
                (client_of(i["agent"]), i["verb"], i["resource"], int(i["status"]))
                for i in items
                if i["seq"] <= end.seq
            ]
        with self.audit_log.open("rb") as f:
            f.seek(start.offset)
            data = f.read(end.offset - start.offset)
        out = []
        for line in data.splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", "")
            if ref.get("apiGroup"):
                resource = f"{resource}.{ref['apiGroup']}"
            if ref.get("subresource"):
                resource = f"{resource}/{ref['subresource']}"
            code = int((event.get("responseStatus") or {}).get("code") or 0)
            out.append((client_of(event.get("userAgent", "")), event["verb"], resource, code))
        return out

    def _bench_requests(self, since: int | None) -> dict[str, Any]:
        url = f"{self.url}/sandbox/bench-requests?since={since or 0}"
        if since is None:  # only the sequence number: ask for nothing old
            url = f"{self.url}/sandbox/bench-requests?since=999999999"
        request = urllib.request.Request(url, headers={"User-Agent": "elastrain-bench-driver"})
        with urllib.request.urlopen(request, timeout=60) as resp:
            return dict(json.loads(resp.read()))


class OperatorProcess:
    """``python -m elastrain operator`` against the cluster, with its metrics and health
    ports; stopped with SIGTERM (its clean shutdown)."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        qps: float,
        burst: int,
        *,
        profile: Path | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.extra = list(extra or [])
        self.log_path = log_path
        self.qps = qps
        self.burst = burst
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # py-spy's collapsed stacks of the whole run go here (``bench.cpu_profile`` reads them).
        self.profile = profile
        self._spy: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("start() the operator first")
        return self.proc.pid

    def start(self, timeout: float = 90) -> OperatorProcess:
        args = [
            sys.executable,
            "-m",
            "elastrain",
            "operator",
            "--metrics-port",
            str(self.metrics_port),
            "--health-port",
            str(self.health_port),
            "--kube-qps",
            str(self.qps),
            "--kube-burst",
            str(self.burst),
            *self.extra,
        ]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the operator exited:\n{_tail(self.log_path)}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the operator did not become healthy in {timeout:.0f}s")
            time.sleep(0.2)
        if self.profile is not None:
            self._spy = self._start_profiler(self.profile)
        return self

    def _start_profiler(self, out: Path) -> subprocess.Popen[bytes]:
        """py-spy sampling this process from outside (``--nonblocking``: the operator is
        never paused), as collapsed stacks with full file names so that elastrain's own
        frames can be told apart. ``--gil``: only the thread holding the GIL is sampled, so
        the samples are Python's CPU time; without it, the client's threads blocked on
        their sockets count as busy. Its CPU is py-spy's, not the operator's."""
        spy = Path(sys.executable).with_name("py-spy")
        if not spy.exists():
            raise RuntimeError(f"--profile needs py-spy: {spy} is missing (pip install py-spy)")
        args = [str(spy), "record", "--pid", str(self.pid), "--rate", "200", "--format", "raw"]
        args += ["--gil", "--full-filenames", "--nonblocking", "--output", str(out)]
        with self.log_path.with_suffix(".py-spy.log").open("ab") as log:
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def _healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self._spy is not None:  # SIGINT: py-spy writes what it sampled, then exits
            self._spy.send_signal(signal.SIGINT)
            try:
                self._spy.wait(60)
            except subprocess.TimeoutExpired:
                self._spy.kill()
        if self.proc is not None:
            _stop(self.proc, grace=30)

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Every sample of its /metrics: name -> [(labels, value)]."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.setdefault(s.name, []).append((dict(s.labels), s.value))
        return out


def tally(requests: list[tuple[str, str, str, int]], who: str) -> Counter[str]:
    """``verb resource`` -> count for one client."""
    return Counter(f"{verb} {resource}".strip() for c, verb, resource, _ in requests if c == who)
