"""The peer of the throughput benchmark (issue #14): Kubeflow's training-operator v1 turning
PyTorchJobs into pods on the same real control plane that our operator runs on.

    python bench/peer.py --jobs 50                       # starts its own real cluster
    python bench/peer.py --jobs 1000 --kubeconfig admin.kubeconfig   # an existing cluster
    python bench/peer.py --jobs 50 --agent               # with the node agent: pods run

``run()`` builds (or finds, cached) the peer with ``bench/peer/build.sh`` (``go install
github.com/kubeflow/training-operator/cmd/training-operator.v1@v1.9.2``, its own go.mod), then:

* **the cluster**: with ``kubeconfig=None`` it starts a fresh ``RealCluster`` from ``bin_dir``
  (our kube-apiserver, etcd, scheduler and controller-manager; by default without the node
  agent, as our throughput bench runs: pods are created but never run, so the figure is the
  operator's and the control plane's, not process start-up on this machine). With a
  kubeconfig it uses that cluster as it is (a caller can run our bench and then this one on
  the very same control plane); it then deletes what it created, except the CRD. Either way
  the identity is the admin's: the peer's RBAC is not what is measured.
* **the peer's CRD**: ``kubeflow.org_pytorchjobs.yaml`` from the module's
  ``manifests/base/crds``, POSTed as it is, waited on until Established.
* **the manager** as its own process: ``--enable-scheme=pytorchjob`` (the only scheme whose
  CRD is installed), no leader election (its default), no gang scheduler (the default), the
  metrics server off, the health probes on a loopback port, production logging (zap JSON at
  info; its job controller also logs through logrus at info, as upstream's image does), and the
  same client rate limit as our bench (QPS 200 / burst 400) so that neither measures its limiter.
  ``--controller-threads`` keeps upstream's default of 1 unless ``threads`` says otherwise.
* **its webhook**, which cannot be switched off: the manager always runs a cert rotator
  (open-policy-agent/cert-controller) and only registers its controllers once the rotator has
  filled the Secret ``training-operator-webhook-cert`` (in ``$MY_POD_NAMESPACE``, here
  ``peer-operator``) *and* found the certificate files in the hard-coded
  ``/tmp/k8s-webhook-server/serving-certs`` (in a cluster, the Secret is mounted there). So
  the bench creates the empty Secret, waits for the rotator to fill it and copies
  ``tls.crt``/``tls.key`` to that directory (what the kubelet's secret volume does);
  the webhook server then listens on a free port. No ValidatingWebhookConfiguration is
  installed, so the API server never calls it: PyTorchJobs are admitted on the CRD's schema
  alone, as TrainingJobs are on theirs (ours adds CEL rules; theirs would add a webhook call).
* **its init container**: workers of a job with a Master get ``init-pytorch``, a loop of
  ``nslookup <job>-master-0`` (cluster DNS, which the sandbox does not have). A template file
  in ``workdir`` (``--pytorch-init-container-template-file``) keeps one init container per
  worker pod but makes it ``true``: only start ordering is lost, which nothing here measures.

Then it creates ``jobs`` PyTorchJobs of 1 Master + 4 Workers (5 pods per job, as our bench's
5 pods per TrainingJob), with ``sleep`` containers, from ``submitters`` threads on keep-alive
connections, and watches pods, services and PyTorchJobs from a resourceVersion taken before the
first POST. The clock starts at the first POST (as our bench's) and ``seconds`` is the time
until all ``5 * jobs`` pods exist, so ``pods_per_s = 5 * jobs / seconds``. With the node agent
it also reports when every pod is Running (``pods_running_s``) and when every job has its
Running condition (``jobs_running_s``: the peer sets it once the Master pod runs).

Nothing depends on it succeeding: any failure (the module not served, the build, the cluster,
a timeout) comes back as ``pods_per_s: None`` with the error in ``why``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "peer" / "build.sh"
MODULE = "github.com/kubeflow/training-operator"
BINARY = "training-operator.v1"
CRD_FILE = "kubeflow.org_pytorchjobs.yaml"
CRD_NAME = "pytorchjobs.kubeflow.org"
JOBS_PATH = "/apis/kubeflow.org/v1/namespaces/{ns}/pytorchjobs"
# Where the peer's cert rotator looks for its serving certificate (hard-coded in
# pkg/cert/cert.go and controller-runtime's default webhook CertDir).
CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")  # noqa: S108
# MY_POD_NAMESPACE: where the peer keeps its webhook Secret (upstream's default is "kubeflow";
# a name of our own, so that a run on an existing cluster never touches a real installation).
OPERATOR_NS = "peer-operator"
CERT_SECRET = "training-operator-webhook-cert"  # noqa: S105 (a Secret's name)
BENCH_NS = "peer-bench"
WORKERS = 4  # + 1 Master = 5 pods per job
BUILD_TIMEOUT = 3600.0
READY_TIMEOUT = 180.0
# One init container per worker, as upstream's, minus its wait on cluster DNS (see above).
INIT_TEMPLATE = """\
- name: init-pytorch
  image: {{.InitContainerImage}}
  imagePullPolicy: IfNotPresent
  command: ['sh', '-c', 'true']
"""


class PeerError(RuntimeError):
    """A step of the peer bench failed; the message is what ``why`` reports."""


# ---------------------------------------------------------------------- building
@dataclass(frozen=True)
class Built:
    version: str
    bin_dir: Path
    crds_dir: Path
    seconds: float


def build_peer(log_path: Path) -> Built:
    """Run ``bench/peer/build.sh`` (minutes cold, instant when its stamp matches); its output
    goes to ``log_path`` and a failure raises with the output's tail, Go's error included."""
    started = time.monotonic()
    with log_path.open("w") as log:
        try:
            proc = subprocess.run(
                [shutil.which("bash") or "/bin/bash", str(BUILD_SCRIPT)],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PeerError(f"{BUILD_SCRIPT} ran past {BUILD_TIMEOUT:.0f}s") from exc
    output = log_path.read_text(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-20:])
        raise PeerError(f"{BUILD_SCRIPT} exited {proc.returncode}:\n{tail}")
    fields = dict(
        line.split(": ", 1)
        for line in output.splitlines()
        if line.startswith(("version: ", "crds: ", "bin: "))
    )
    return Built(
        version=fields["version"],
        bin_dir=Path(fields["bin"]),
        crds_dir=Path(fields["crds"]),
        seconds=time.monotonic() - started,
    )


# ---------------------------------------------------------------------- the API
class Kube:
    """A minimal client for one kubeconfig (client certificate or token), safe to share
    between threads: each thread keeps its own keep-alive connection, so that concurrent
    POSTs are not each a TLS handshake (the driver should not be the bottleneck)."""

    def __init__(self, kubeconfig: Path, scratch: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        ctx_name = config.get("current-context")
        ctx = next(c["context"] for c in config["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == ctx["user"])
        url = urllib.parse.urlsplit(cluster["server"])
        if url.scheme != "https":
            raise PeerError(f"{kubeconfig}: only https servers are supported ({url.geturl()})")
        self.host, self.port = str(url.hostname), int(url.port or 443)
        self.prefix = url.path.rstrip("/")
        base = kubeconfig.parent

        def material(key: str) -> str | None:
            """A file named in the kubeconfig, or its inline ``-data`` written to scratch."""
            section = cluster if key == "certificate-authority" else user
            if section.get(f"{key}-data"):
                scratch.mkdir(parents=True, exist_ok=True)
                path = scratch / key
                path.write_bytes(base64.b64decode(section[f"{key}-data"]))
                path.chmod(0o600)
                return str(path)
            value = section.get(key)
            return str(base / value) if value else None

        self.context = ssl.create_default_context(cafile=material("certificate-authority"))
        cert, key = material("client-certificate"), material("client-key")
        if cert and key:
            self.context.load_cert_chain(cert, key)
        self.headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if user.get("token"):
            self.headers["Authorization"] = f"Bearer {user['token']}"
        self._local = threading.local()

    def connect(self, timeout: float | None = 60.0) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=timeout
        )

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        """One request on this thread's connection; one retry on a fresh connection when the
        server closed the kept-alive one."""
        data = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            conn: http.client.HTTPSConnection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self.connect()
            try:
                conn.request(method, self.prefix + path, body=data, headers=self.headers)
                response = conn.getresponse()
                raw = response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
                continue
            parsed = json.loads(raw) if raw else {}
            return response.status, parsed if isinstance(parsed, dict) else {}
        raise AssertionError("unreachable")

    def ok(self, method: str, path: str, body: Any = None, *, allow: tuple[int, ...] = ()) -> Any:
        status, answer = self.call(method, path, body)
        if status >= 300 and status not in allow:
            raise PeerError(f"{method} {path}: {status} {answer.get('message', answer)}")
        return answer


class Watch(threading.Thread):
    """A watch on ``path`` from ``resource_version``, renewed when the server ends it, calling
    ``on_event(type, object)`` for each event. ``stop()`` ends it at once."""

    def __init__(
        self,
        kube: Kube,
        path: str,
        resource_version: str,
        on_event: Callable[[str, dict[str, Any]], None],
    ) -> None:
        super().__init__(name=f"watch {path}", daemon=True)
        self.kube, self.path, self.rv, self.on_event = kube, path, resource_version, on_event
        self._stopping = threading.Event()
        self._conn: http.client.HTTPSConnection | None = None
        self.error: str | None = None

    def run(self) -> None:
        while not self._stopping.is_set():
            query = urllib.parse.urlencode(
                {"watch": "1", "resourceVersion": self.rv, "timeoutSeconds": "300"}
            )
            self._conn = conn = self.kube.connect(timeout=None)
            try:
                conn.request(
                    "GET", f"{self.kube.prefix}{self.path}?{query}", headers=self.kube.headers
                )
                response = conn.getresponse()
                if response.status != 200:
                    self.error = f"watch {self.path}: {response.status} {response.read()[:300]!r}"
                    return
                for line in iter(response.readline, b""):
                    event = json.loads(line)
                    obj = event.get("object", {})
                    if event.get("type") == "ERROR":
                        self.error = f"watch {self.path}: {obj.get('message', obj)}"
                        return
                    self.rv = obj.get("metadata", {}).get("resourceVersion", self.rv)
                    self.on_event(event["type"], obj)
            except (http.client.HTTPException, OSError, ValueError) as exc:
                if not self._stopping.is_set():
                    self.error = f"watch {self.path}: {type(exc).__name__}: {exc}"
                return
            finally:
                conn.close()

    def stop(self) -> None:
        self._stopping.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(2)
        self.join(10)


@dataclass
class Tally:
    """What the watches saw, stamped with ``time.monotonic()`` on arrival."""

    pods_expected: int
    services_expected: int
    jobs_expected: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    pods: set[str] = field(default_factory=set)
    running_pods: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    running_jobs: set[str] = field(default_factory=set)
    pods_at: float | None = None
    pods_running_at: float | None = None
    services_at: float | None = None
    jobs_running_at: float | None = None
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def pod(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        with self.lock:
            if kind == "DELETED":
                return
            self.pods.add(name)
            if obj.get("status", {}).get("phase") == "Running":
                self.running_pods.add(name)
            now = time.monotonic()
            if self.pods_at is None and len(self.pods) >= self.pods_expected:
                self.pods_at = now
            if self.pods_running_at is None and len(self.running_pods) >= self.pods_expected:
                self.pods_running_at = now
            self.changed.notify_all()

    def service(self, kind: str, obj: dict[str, Any]) -> None:
        with self.lock:
            if kind != "DELETED":
                self.services.add(obj["metadata"]["name"])
            if self.services_at is None and len(self.services) >= self.services_expected:
                self.services_at = time.monotonic()
            self.changed.notify_all()

    def job(self, kind: str, obj: dict[str, Any]) -> None:
        conditions = obj.get("status", {}).get("conditions") or []
        running = any(
            c.get("type") in ("Running", "Succeeded") and c.get("status") == "True"
            for c in conditions
        )
        with self.lock:
            if kind != "DELETED" and running:
                self.running_jobs.add(obj["metadata"]["name"])
            if self.jobs_running_at is None and len(self.running_jobs) >= self.jobs_expected:
                self.jobs_running_at = time.monotonic()
            self.changed.notify_all()

    def wait(self, done: Callable[[], bool], deadline: float, watches: list[Watch]) -> bool:
        """Until ``done()`` (checked under the lock) or the deadline; a dead watch fails."""
        with self.lock:
            while not done():
                for w in watches:
                    if w.error:
                        raise PeerError(w.error)
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 1.0))
            return True


# ---------------------------------------------------------------------- objects
def pytorch_job(name: str, command: list[str]) -> dict[str, Any]:
    """1 Master + 4 Workers running ``command``. The container must be named ``pytorch``: the
    peer wires env and ports into the container of that name only."""

    def replica(count: int) -> dict[str, Any]:
        return {
            "replicas": count,
            "restartPolicy": "OnFailure",
            "template": {
                "spec": {
                    "containers": [{"name": "pytorch", "image": "busybox", "command": command}]
                }
            },
        }

    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {"pytorchReplicaSpecs": {"Master": replica(1), "Worker": replica(WORKERS)}},
    }


def install_crd(kube: Kube, crd_path: Path, timeout: float = 60.0) -> None:
    """POST the peer's CRD (an existing one is kept) and wait until it is Established."""
    crd = yaml.safe_load(crd_path.read_text())
    kube.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, allow=(409,))
    deadline = time.monotonic() + timeout
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
    while time.monotonic() < deadline:
        conditions = kube.ok("GET", path).get("status", {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return
        time.sleep(0.2)
    raise PeerError(f"CRD {CRD_NAME} not Established after {timeout:.0f}s")


def ensure_namespace(kube: Kube, name: str, timeout: float = 300.0) -> bool:
    """Create ``name`` (True) or find it Active (False), waiting out a Terminating one left by
    an earlier run on the same cluster; then wait for its ``default`` ServiceAccount (pods are
    refused without it)."""
    deadline = time.monotonic() + timeout
    path = f"/api/v1/namespaces/{name}"
    while True:
        status, answer = kube.call("GET", path)
        if status == 200 and answer.get("status", {}).get("phase") != "Terminating":
            created = False
            break
        if status == 404:
            status, answer = kube.call(
                "POST", "/api/v1/namespaces", {"apiVersion": "v1", "metadata": {"name": name}}
            )
            if status < 300:
                created = True
                break
            if status != 409:
                raise PeerError(f"POST namespace {name}: {status} {answer.get('message')}")
        elif status != 200:
            raise PeerError(f"GET namespace {name}: {status} {answer.get('message')}")
        if time.monotonic() > deadline:
            raise PeerError(f"namespace {name} still terminating after {timeout:.0f}s")
        time.sleep(1)
    while kube.call("GET", f"{path}/serviceaccounts/default")[0] != 200:
        if time.monotonic() > deadline:
            raise PeerError(f"namespace {name}: no default ServiceAccount after {timeout:.0f}s")
        time.sleep(0.2)
    return created


# ---------------------------------------------------------------------- the peer process
@dataclass
class Manager:
    """The peer's manager as a child process in its own process group (killed with it)."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    probe: str

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise PeerError(f"{BINARY} exited with {self.popen.returncode}:\n{self.tail()}")

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            if self.popen.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(wait)


def start_manager(
    built: Built, kubeconfig: Path, workdir: Path, *, qps: int, burst: int, threads: int
) -> Manager:
    from elastrain_sandbox.ports import free_port  # the project's below-ephemeral ports

    template = workdir / "init-container.yaml"
    template.write_text(INIT_TEMPLATE)
    probe = f"127.0.0.1:{free_port()}"
    argv = [
        str(built.bin_dir / BINARY),
        "--enable-scheme=pytorchjob",
        "--leader-elect=false",
        "--metrics-bind-address=0",
        f"--health-probe-bind-address={probe}",
        f"--webhook-server-port={free_port()}",
        f"--kube-api-qps={qps}",
        f"--kube-api-burst={burst}",
        f"--controller-threads={threads}",
        f"--pytorch-init-container-template-file={template}",
        "--zap-devel=false",
        "--zap-log-level=info",
    ]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "MY_POD_NAMESPACE": OPERATOR_NS}
    log_path = workdir / "peer-manager.log"
    with log_path.open("ab") as out:
        popen = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Manager(popen, log_path, probe)


def wait_manager_ready(kube: Kube, manager: Manager, timeout: float = READY_TIMEOUT) -> None:
    """Act as the secret volume (copy the rotator's certificate to CERT_DIR), then wait for
    ``/readyz`` and for the PyTorchJob controller's workers."""
    deadline = time.monotonic() + timeout
    secret_path = f"/api/v1/namespaces/{OPERATOR_NS}/secrets/{CERT_SECRET}"
    copied = False
    while not copied:
        manager.check_alive()
        data = kube.ok("GET", secret_path).get("data") or {}
        if data.get("tls.crt") and data.get("tls.key"):
            CERT_DIR.mkdir(parents=True, exist_ok=True)
            for name in ("tls.crt", "tls.key"):
                tmp = CERT_DIR / f".{name}.tmp"
                tmp.write_bytes(base64.b64decode(data[name]))
                tmp.chmod(0o600)
                tmp.replace(CERT_DIR / name)
            copied = True
        elif time.monotonic() > deadline:
            raise PeerError(
                f"the peer's cert rotator never filled {secret_path}:\n{manager.tail()}"
            )
        else:
            time.sleep(0.2)
    conn = http.client.HTTPConnection(manager.probe, timeout=5)
    while True:
        manager.check_alive()
        try:
            conn.request("GET", "/readyz")
            response = conn.getresponse()
            response.read()
            ready = response.status == 200
        except (http.client.HTTPException, OSError):
            conn.close()
            ready = False
        log = manager.log_path.read_text(errors="replace")
        if ready and any(
            "Starting workers" in line and "pytorchjob-controller" in line
            for line in log.splitlines()
        ):
            conn.close()
            return
        if time.monotonic() > deadline:
            raise PeerError(f"{BINARY} not ready after {timeout:.0f}s:\n{manager.tail()}")
        time.sleep(0.2)


# ---------------------------------------------------------------------- the run
@contextlib.contextmanager
def cluster_kubeconfig(
    workdir: Path, bin_dir: Path, kubeconfig: Path | None, *, agent: bool, nodes: int
) -> Iterator[Path]:
    """The given kubeconfig, or a fresh RealCluster's admin kubeconfig (stopped on exit)."""
    if kubeconfig is not None:
        yield kubeconfig
        return
    from elastrain_sandbox.realcluster import RealCluster

    options: dict[str, Any] = {"shutdown_grace": 1.0}
    real = RealCluster(
        workdir / "cluster",
        workdir / "admin.kubeconfig",
        bin_dir,
        nodes=nodes,
        agent=agent,
        agent_options=options,
    )
    real.start()
    try:
        yield real.kubeconfig_path
    finally:
        real.stop()


def submit(kube: Kube, jobs: int, submitters: int, command: list[str]) -> None:
    path = JOBS_PATH.format(ns=BENCH_NS)
    with ThreadPoolExecutor(submitters) as pool:
        list(pool.map(lambda i: kube.ok("POST", path, pytorch_job(f"p{i}", command)), range(jobs)))


def run(
    workdir: Path,
    jobs: int,
    bin_dir: Path,
    *,
    kubeconfig: Path | None = None,
    agent: bool = False,
    nodes: int = 4,
    qps: int = 200,
    burst: int = 400,
    threads: int = 1,
    submitters: int = 8,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Build (or find) the peer, run it, create ``jobs`` PyTorchJobs, time their pods.

    ``bin_dir`` holds our real control plane's binaries (used when ``kubeconfig`` is None).
    Never raises for a failure of the peer or the cluster: ``pods_per_s`` is then None and
    ``why`` says what failed. ``timeout`` bounds each wait (default ``max(600, pods / 2)`` s).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    expected = jobs * (1 + WORKERS)
    result: dict[str, Any] = {
        "peer": f"{MODULE} (PyTorchJob)",
        "version": None,
        "jobs": jobs,
        "pods_expected": expected,
        "pods": 0,
        "seconds": None,
        "pods_per_s": None,
        "why": None,
        "jobs_running_s": None,
        "pods_running_s": None,
        "submitted_s": None,
        "services": 0,
        "services_s": None,
        "build_s": None,
        "settings": {
            "qps": qps,
            "burst": burst,
            "controller_threads": threads,
            "submitters": submitters,
            "agent": agent,
            "cluster": "kubeconfig" if kubeconfig else f"RealCluster({bin_dir}, nodes={nodes})",
        },
        "manager_log": str(workdir / "peer-manager.log"),
    }
    try:
        built = build_peer(workdir / "peer-build.log")
        result["version"], result["build_s"] = built.version, round(built.seconds, 1)
        with cluster_kubeconfig(workdir, bin_dir, kubeconfig, agent=agent, nodes=nodes) as config:
            _measure(result, built, config, workdir, qps, burst, threads, submitters, timeout)
    except Exception as exc:  # a bench of someone else's operator must never break ours
        result["why"] = f"{type(exc).__name__}: {exc}"
    return result


def _measure(
    result: dict[str, Any],
    built: Built,
    kubeconfig: Path,
    workdir: Path,
    qps: int,
    burst: int,
    threads: int,
    submitters: int,
    timeout: float | None,
) -> None:
    jobs, expected = result["jobs"], result["pods_expected"]
    agent = result["settings"]["agent"]
    wait_s = timeout if timeout is not None else max(600.0, expected / 2)
    kube = Kube(kubeconfig, workdir / "kube")
    existing = result["settings"]["cluster"] == "kubeconfig"
    install_crd(kube, built.crds_dir / CRD_FILE)
    created = [ns for ns in (OPERATOR_NS, BENCH_NS) if ensure_namespace(kube, ns)]
    kube.ok(
        "POST",
        f"/api/v1/namespaces/{OPERATOR_NS}/secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": CERT_SECRET}},
        allow=(409,),
    )
    manager = start_manager(built, kubeconfig, workdir, qps=qps, burst=burst, threads=threads)
    watches: list[Watch] = []
    try:
        wait_manager_ready(kube, manager)
        tally = Tally(expected, expected, jobs)  # one Service per replica, as the peer makes
        for path, handler in (
            (f"/api/v1/namespaces/{BENCH_NS}/pods", tally.pod),
            (f"/api/v1/namespaces/{BENCH_NS}/services", tally.service),
            (JOBS_PATH.format(ns=BENCH_NS), tally.job),
        ):
            rv = kube.ok("GET", f"{path}?limit=1")["metadata"]["resourceVersion"]
            watches.append(Watch(kube, path, rv, handler))
        for w in watches:
            w.start()
        command = ["sleep", "3600"]
        started = time.monotonic()
        submit(kube, jobs, submitters, command)
        result["submitted_s"] = round(time.monotonic() - started, 2)
        deadline = time.monotonic() + wait_s
        done = tally.wait(lambda: tally.pods_at is not None, deadline, watches)
        manager.check_alive()
        with tally.lock:
            result["pods"], result["services"] = len(tally.pods), len(tally.services)
            if tally.services_at is not None:
                result["services_s"] = round(tally.services_at - started, 2)
        if not done or tally.pods_at is None:
            raise PeerError(f"{len(tally.pods)}/{expected} pods after {wait_s:.0f}s")
        seconds = tally.pods_at - started
        result["seconds"] = round(seconds, 2)
        result["pods_per_s"] = round(expected / seconds, 1)
        # The peer makes one Service per pod, in the same reconcile as the pods, just after
        # them; our bench waits for its Services as well, so this one reports them too.
        deadline = time.monotonic() + wait_s
        tally.wait(lambda: tally.services_at is not None, deadline, watches)
        if agent:
            tally.wait(
                lambda: tally.jobs_running_at is not None and tally.pods_running_at is not None,
                deadline,
                watches,
            )
            with tally.lock:
                if tally.jobs_running_at is not None:
                    result["jobs_running_s"] = round(tally.jobs_running_at - started, 2)
                if tally.pods_running_at is not None:
                    result["pods_running_s"] = round(tally.pods_running_at - started, 2)
                result["jobs_running"] = len(tally.running_jobs)
                result["pods_running"] = len(tally.running_pods)
        with tally.lock:
            result["services"] = len(tally.services)
            if tally.services_at is not None:
                result["services_s"] = round(tally.services_at - started, 2)
    finally:
        manager.stop()  # first: a failure below must never leave the peer running
        for w in watches:
            w.stop()
        if existing:
            # An existing cluster: leave it as found, but for the CRD (another run reuses it).
            for ns in created:
                kube.call("DELETE", f"/api/v1/namespaces/{ns}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--bin-dir",
        type=Path,
        default=Path(
            os.environ.get("ELASTRAIN_CONTROL_PLANE_BIN")
            or Path.home() / ".cache/elastrain/control-plane/v1.37.2/bin"
        ),
    )
    parser.add_argument("--kubeconfig", type=Path, default=None)
    parser.add_argument("--agent", action="store_true", help="run the node agent: pods run")
    parser.add_argument("--threads", type=int, default=1, help="--controller-threads")
    parser.add_argument("--qps", type=int, default=200)
    parser.add_argument("--burst", type=int, default=400)
    args = parser.parse_args(argv)
    import tempfile

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="elastrain-peer-"))
    result = run(
        workdir,
        args.jobs,
        args.bin_dir,
        kubeconfig=args.kubeconfig,
        agent=args.agent,
        threads=args.threads,
        qps=args.qps,
        burst=args.burst,
    )
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0 if result["pods_per_s"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
