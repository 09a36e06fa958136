"""``RealControlPlane``: etcd, kube-apiserver, kube-controller-manager and kube-scheduler as child
processes on loopback, with a fresh PKI, RBAC and the default admission plugins.

Every component listens on 127.0.0.1 only, on ports chosen below the ephemeral range, and keeps
its state in ``state_dir`` (etcd's data too), so parallel clusters never collide and nothing
outlives :meth:`RealControlPlane.stop`: each process runs in its own process group, is sent
SIGTERM, and SIGKILL after a grace period.

The flags are kubeadm's where it has an opinion (``Node,RBAC`` authorization, service-account
issuer and keys, front-proxy CA, kubelet client certificate for logs and exec), with the
admission plugins the API server enables by default, PodSecurity and NodeRestriction among them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from elastrain_sandbox.controlplane import metricsserver, pki
from elastrain_sandbox.controlplane.pki import KeyPair, Pki
from elastrain_sandbox.ports import free_port

log = logging.getLogger(__name__)

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
BIN_ENV = "ELASTRAIN_CONTROL_PLANE_BIN"
# The controllers a kubeadm cluster runs, less the bootstrap-token ones: garbage
# collection, namespaces, service accounts and tokens, endpoint slices, node lifecycle (taints
# and evictions), the disruption budget controller and the HPA among them.
CONTROLLERS = "*,-bootstrapsigner,-tokencleaner"
START_TIMEOUT = 120.0
STOP_GRACE = 10.0


class ControlPlaneError(RuntimeError):
    """A component is missing, exited, or did not become ready in time (its log is quoted)."""


def default_bin_dir() -> Path | None:
    """``$ELASTRAIN_CONTROL_PLANE_BIN`` when set (``make control-plane`` prints it)."""
    value = os.environ.get(BIN_ENV)
    return Path(value) if value else None


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class RealControlPlane:
    """One private cluster; ``start()`` returns once ``/readyz`` is ok and the controllers and
    the scheduler report healthy, ``stop()`` leaves no process behind."""

    state_dir: Path
    kubeconfig_path: Path
    bin_dir: Path
    service_cidr: str = pki.SERVICE_CIDR
    # Seconds kube-controller-manager waits for a silent node (no Lease renewal, no status)
    # before marking it NotReady; None keeps its default (50 s). Tests of node faults pass a few
    # seconds, and the node monitor then checks every second.
    node_monitor_grace_period: float | None = None
    # Extra kube-apiserver flags, after the ones above (the benchmarks add an audit log:
    # ``--audit-policy-file``, ``--audit-log-path``); empty by default.
    apiserver_args: tuple[str, ...] = ()
    _procs: list[_Process] = field(default_factory=list)
    url: str = ""
    keys: Pki | None = None

    def __post_init__(self) -> None:
        missing = [b for b in BINARIES if not (self.bin_dir / b).is_file()]
        if missing:
            raise ControlPlaneError(
                f"{', '.join(missing)} not found in {self.bin_dir}: run `make control-plane`"
            )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start every component in dependency order; on any failure stop what started."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        keys = self.keys = pki.generate(self.state_dir / "pki")
        etcd_client, etcd_peer = free_port(), free_port()
        api_port, kcm_port, sched_port = free_port(), free_port(), free_port()
        self.url = f"https://127.0.0.1:{api_port}"
        etcd_url = f"http://127.0.0.1:{etcd_client}"
        self._spawn(
            "etcd",
            "--name=elastrain",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=elastrain=http://127.0.0.1:{etcd_peer}",
            # A test cluster's data is thrown away: durability costs seconds per write burst.
            "--unsafe-no-fsync",
            "--log-level=warn",
        )
        self._wait_http(f"{etcd_url}/health", "etcd", insecure=True)
        self._spawn(
            "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The reconciler refuses a loopback address for the ``kubernetes`` Service's
            # endpoints; nothing here routes the service range anyway (no kube-proxy).
            "--endpoint-reconciler-type=none",
            f"--secure-port={api_port}",
            f"--tls-cert-file={keys.apiserver.cert}",
            f"--tls-private-key-file={keys.apiserver.key}",
            f"--client-ca-file={keys.ca.cert}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={keys.service_account_pub}",
            f"--service-account-signing-key-file={keys.service_account_key}",
            f"--service-cluster-ip-range={self.service_cidr}",
            "--authorization-mode=Node,RBAC",
            # The defaults (PodSecurity included) plus NodeRestriction, as kubeadm enables.
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            f"--kubelet-client-certificate={keys.kubelet_client.cert}",
            f"--kubelet-client-key={keys.kubelet_client.key}",
            f"--kubelet-certificate-authority={keys.ca.cert}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--requestheader-client-ca-file={keys.front_proxy_ca.cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={keys.front_proxy_client.cert}",
            f"--proxy-client-key-file={keys.front_proxy_client.key}",
            # No kube-proxy routes ClusterIPs here: aggregated APIs (metrics-server) are
            # reached at their Endpoints.
            "--enable-aggregator-routing=true",
            "--profiling=false",
            *self.apiserver_args,
        )
        self._wait_http(f"{self.url}/readyz", "kube-apiserver")
        self._write_kubeconfig(self.kubeconfig_path, keys.admin)
        kcm_config = self._write_kubeconfig(
            self.state_dir / "controller-manager.kubeconfig", keys.controller_manager
        )
        sched_config = self._write_kubeconfig(
            self.state_dir / "scheduler.kubeconfig", keys.scheduler
        )
        self._spawn(
            "kube-controller-manager",
            f"--kubeconfig={kcm_config}",
            f"--authentication-kubeconfig={kcm_config}",
            f"--authorization-kubeconfig={kcm_config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={kcm_port}",
            f"--client-ca-file={keys.ca.cert}",
            f"--requestheader-client-ca-file={keys.front_proxy_ca.cert}",
            f"--root-ca-file={keys.ca.cert}",
            f"--service-account-private-key-file={keys.service_account_key}",
            f"--cluster-signing-cert-file={keys.ca.cert}",
            f"--cluster-signing-key-file={keys.ca.key}",
            "--use-service-account-credentials=true",
            f"--controllers={CONTROLLERS}",
            f"--service-cluster-ip-range={self.service_cidr}",
            "--leader-elect=false",
            "--profiling=false",
            # The HPA controller looks every 5 s instead of 15 s: a test cluster's HPAs react
            # within one metrics-server resolution.
            "--horizontal-pod-autoscaler-sync-period=5s",
            *self._node_monitor_flags(),
        )
        self._spawn(
            "kube-scheduler",
            f"--kubeconfig={sched_config}",
            f"--authentication-kubeconfig={sched_config}",
            f"--authorization-kubeconfig={sched_config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={sched_port}",
            f"--client-ca-file={keys.ca.cert}",
            "--leader-elect=false",
            "--profiling=false",
        )
        self._wait_http(
            f"https://127.0.0.1:{kcm_port}/healthz", "kube-controller-manager", insecure=True
        )
        self._wait_http(f"https://127.0.0.1:{sched_port}/healthz", "kube-scheduler", insecure=True)

    def start_metrics_server(self, host: str) -> None:
        """Start metrics-server on ``host`` (the node agent's bridge address) and register it
        with the aggregator; return once ``metrics.k8s.io`` answers (``metricsserver``)."""
        keys = self.keys
        assert keys is not None, "start() first"
        binary = self.bin_dir / metricsserver.BINARY
        if not binary.is_file():
            raise ControlPlaneError(f"{binary} not found: run `make control-plane`")
        directory = self.state_dir / "pki"
        client = keys.client(directory, "metrics-server-client", metricsserver.USER)
        service = f"{metricsserver.NAME}.{metricsserver.NAMESPACE}.svc"
        serving = keys.serving(
            directory, "metrics-server", dns=(service, f"{service}.cluster.local"), ips=(host,)
        )
        kubeconfig = self.state_dir / "metrics-server.kubeconfig"
        write_kubeconfig(kubeconfig, self.url, keys.ca.cert, client)
        api = metricsserver.AdminApi(self.url, keys)
        port = metricsserver.port()
        for obj in metricsserver.rbac_objects():
            api.create(obj)
        self._spawn(
            metricsserver.BINARY,
            *metricsserver.args(
                host=host,
                port=port,
                kubeconfig=kubeconfig,
                serving=serving,
                client=client,
                keys=keys,
            ),
        )
        for obj in metricsserver.routing_objects(host, port, keys.ca.cert.read_bytes()):
            api.create(obj)
        try:
            metricsserver.wait_available(api, self._check_running)
        except TimeoutError as exc:
            proc = self._procs[-1]
            raise ControlPlaneError(f"{exc}\n{proc.name} log:\n{proc.tail()}") from exc

    def stop(self) -> None:
        """Stop the components one by one, newest first, so etcd goes last: a kube-apiserver
        whose etcd is already gone hangs in its shutdown. SIGTERM, then SIGKILL after the grace."""
        for proc in reversed(self._procs):
            if proc.popen.poll() is None:
                _signal_group(proc.popen, signal.SIGTERM)
                try:
                    proc.popen.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    log.warning("%s ignored SIGTERM for %.0fs; killing it", proc.name, STOP_GRACE)
            # Whatever is left in its process group goes too (SIGKILL to a dead group is a no-op).
            _signal_group(proc.popen, signal.SIGKILL)
            proc.popen.wait()
        self._procs.clear()

    # ------------------------------------------------------------------ helpers
    def _node_monitor_flags(self) -> list[str]:
        grace = self.node_monitor_grace_period
        if grace is None:
            return []
        return [f"--node-monitor-grace-period={grace:g}s", "--node-monitor-period=1s"]

    def _spawn(self, name: str, *args: str) -> None:
        log_path = self.state_dir / f"{name}.log"
        with log_path.open("ab") as out:
            popen = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stop() reaches its children too
            )
        self._procs.append(_Process(name, popen, log_path))
        log.info("started %s (pid %d), log %s", name, popen.pid, log_path)

    def _wait_http(self, url: str, what: str, *, insecure: bool = False) -> None:
        """Poll ``url`` until it answers 200, failing fast if any component has exited."""
        context = self._ssl_context(insecure)
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            self._check_running()
            try:
                with urllib.request.urlopen(url, timeout=5, context=context) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ControlPlaneError(f"{what} not ready at {url} after {START_TIMEOUT:.0f}s ({last})")

    def _check_running(self) -> None:
        """ControlPlaneError, quoting its log, if any component has exited."""
        for proc in self._procs:
            if proc.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}"
                )

    def _ssl_context(self, insecure: bool) -> ssl.SSLContext | None:
        if self.keys is None:
            return None
        if insecure:
            # The components' own self-signed serving certificates: only their health matters.
            context = ssl._create_unverified_context()
        else:
            context = ssl.create_default_context(cafile=str(self.keys.ca.cert))
        context.load_cert_chain(str(self.keys.admin.cert), str(self.keys.admin.key))
        return context

    def _write_kubeconfig(self, path: Path, identity: KeyPair) -> Path:
        assert self.keys is not None
        write_kubeconfig(path, self.url, self.keys.ca.cert, identity)
        return path


def write_kubeconfig(path: Path, url: str, ca: Path, identity: KeyPair) -> None:
    """A kubeconfig for ``identity`` (client certificate) against ``url``, mode 0600."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "elastrain", "cluster": {"server": url, "certificate-authority": str(ca)}}
        ],
        "users": [
            {
                "name": "elastrain",
                "user": {
                    "client-certificate": str(identity.cert),
                    "client-key": str(identity.key),
                },
            }
        ],
        "contexts": [
            {"name": "elastrain", "context": {"cluster": "elastrain", "user": "elastrain"}}
        ],
        "current-context": "elastrain",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)


def _signal_group(popen: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, sig)
