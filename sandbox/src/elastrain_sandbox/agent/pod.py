"""One pod on the node: its sandbox (network, hosts, volumes) and its containers' lifecycles.

This is the kubelet's pod worker in miniature. Init containers run one after another to
completion; then every main container is supervised on its own: started, awaited, restarted
according to ``restartPolicy`` with the crash-loop back-off. The runtime never raises into the
agent: a misconfigured container waits with ``CreateContainerConfigError`` and is retried, and
an unexpected error is logged and shown on the containers, as a kubelet would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elastrain_sandbox.agent import hosts, mountpoints
from elastrain_sandbox.agent.apiaccess import IssuedToken, ServiceEndpoint, TokenIssuer, write_token
from elastrain_sandbox.agent.backoff import Backoff, BackoffPolicy
from elastrain_sandbox.agent.cgroups import MemoryController
from elastrain_sandbox.agent.container import MARKER_VAR, ContainerProcess, LaunchSpec
from elastrain_sandbox.agent.envvars import ConfigError, ObjectLookup
from elastrain_sandbox.agent.images import ImageMap
from elastrain_sandbox.agent.launch import (
    RESOLV_CONF,
    LaunchContext,
    launch_spec,
    termination_message,
)
from elastrain_sandbox.agent.network import PodNet, PodNetwork
from elastrain_sandbox.agent.podstatus import (
    Conditions,
    ContainerRecord,
    Json,
    Terminated,
    pod_phase,
    rfc3339,
)
from elastrain_sandbox.agent.probes import ProbeCounter, ProbeTarget, probe_once, run_hook
from elastrain_sandbox.agent.source import SourceError
from elastrain_sandbox.agent.volumes import TokenSource, prepare_volumes, token_sources

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]
TERMINAL = ("Succeeded", "Failed")
TOKEN_RETRY = 10.0  # seconds between attempts when a token refresh fails


@dataclass
class RuntimeConfig:
    """What every pod runtime of one agent shares."""

    state_dir: Path
    network: PodNetwork
    images: ImageMap = field(default_factory=ImageMap.default)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    namespaces: bool = False  # UTS + mount namespaces (root): hostname, /etc/hosts, volumes
    lookup: ObjectLookup | None = None
    # Prefix of container IDs: the agent's instance tag, so orphans of a dead agent are found.
    owner: str = ""
    # Enforces limits.memory (and yields OOMKilled) when the host has a usable controller.
    memory: MemoryController | None = None
    # Peers and services the pod's /etc/hosts should carry; called at setup and on refresh.
    hosts_provider: Callable[[PodRuntime], list[hosts.HostEntry]] | None = None
    # The real control plane only: where pods reach the API (env, /etc/hosts) and who mints
    # their service-account tokens (see ``apiaccess``). None: no service env, empty tokens.
    service: ServiceEndpoint | None = None
    tokens: TokenIssuer | None = None


class PodRuntime:
    """Runs ``pod`` until it ends or :meth:`stop` is called; :meth:`status` reports it."""

    def __init__(
        self,
        pod: Obj,
        config: RuntimeConfig,
        on_change: Callable[[], None],
        on_event: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.pod = pod
        self.config = config
        self._on_change = on_change
        self._on_event = on_event
        meta, spec = pod["metadata"], pod.get("spec", {})
        self.uid = str(meta.get("uid") or f"{meta.get('namespace', 'default')}/{meta['name']}")
        self.namespace = str(meta.get("namespace", "default"))
        self.name = str(meta["name"])
        self.restart_policy = str(spec.get("restartPolicy") or "Always")
        self.dir = config.state_dir / "pods" / self.uid.replace("/", "_")
        # Name under which this pod holds the mount points created on the host for it.
        self.holder = mountpoints.holder_key(config.owner, self.uid)
        self.net: PodNet | None = None
        self.start_time = time.time()
        has_init = bool(spec.get("initContainers"))
        self.init_records = [
            ContainerRecord(c["name"], c.get("image", ""), "PodInitializing")
            for c in spec.get("initContainers") or []
        ]
        main_reason = "PodInitializing" if has_init else "ContainerCreating"
        self.records = [
            ContainerRecord(c["name"], c.get("image", ""), main_reason)
            for c in spec.get("containers") or []
        ]
        self.conditions = Conditions()
        self._initialized = not has_init
        self._init_failed = False
        self._final_phase: str | None = None
        self._processes: dict[str, ContainerProcess] = {}
        self._volumes: dict[str, Path] = {}
        self._stop = asyncio.Event()
        self._grace = 0.0
        self._task: asyncio.Task[None] | None = None
        self._sidecars: list[asyncio.Task[bool]] = []
        self._sidecars_ending = False
        self._started: dict[str, asyncio.Event] = {}
        self._tokens: dict[TokenSource, IssuedToken] = {}
        self._token_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Begin running the pod in the background."""
        self._task = asyncio.create_task(self._run(), name=f"pod {self.namespace}/{self.name}")

    async def stop(self, grace: float) -> None:
        """Stop every container (SIGTERM, ``grace`` seconds, SIGKILL); no restarts after."""
        self._grace = grace
        self._stop.set()
        for name, proc in self._processes.items():
            if proc.running:
                self._event("Normal", "Killing", f"Stopping container {name}")
        stops = [self._stop_container(n, p, grace) for n, p in list(self._processes.items())]
        await asyncio.gather(*stops)
        if self._task is not None:
            await self._task
        self._changed()

    async def _stop_container(self, name: str, proc: ContainerProcess, grace: float) -> None:
        """The kubelet's kill: the preStop hook (within the grace period), then SIGTERM, then
        SIGKILL once the grace period is over (at least 2 s after a hook, as the kubelet)."""
        spec = next((c for c in self._all_specs() if c.get("name") == name), {})
        hook = (spec.get("lifecycle") or {}).get("preStop")
        begun = time.monotonic()
        if hook and proc.running and self.net is not None:
            target = ProbeTarget(
                self.net.ip,
                spec.get("ports") or [],
                proc.pid,
                {**proc.spec.env, MARKER_VAR: proc.spec.container_id},
                self.config.namespaces,
            )
            try:
                ok = await asyncio.wait_for(run_hook(hook, target), timeout=grace)
            except TimeoutError:
                ok = False
            if not ok:
                self._event("Warning", "FailedPreStopHook", f"PreStop hook failed for {name}")
        remaining = grace - (time.monotonic() - begun)
        await proc.stop(max(remaining, 2.0) if hook else max(remaining, 0.0))

    async def _post_start(self, spec: Obj, name: str, proc: ContainerProcess) -> bool:
        """Run the ``postStart`` hook, if any; False (and an event) if it failed, in which
        case the kubelet kills the container and restarts it according to policy."""
        hook = (spec.get("lifecycle") or {}).get("postStart")
        if not hook or self.net is None:
            return True
        env = {**proc.spec.env, MARKER_VAR: proc.spec.container_id}
        target = ProbeTarget(
            self.net.ip, spec.get("ports") or [], proc.pid, env, self.config.namespaces
        )
        if await run_hook(hook, target):
            return True
        self._event("Warning", "FailedPostStartHook", f"PostStart hook failed for {name}")
        return False

    def _all_specs(self) -> list[Obj]:
        return [*self._init_specs(), *(self.pod.get("spec", {}).get("containers") or [])]

    async def teardown(self) -> None:
        """Release the pod's network, remove its directory (volumes but PVCs go too) and let
        go of the mount points created on the host for it."""
        if not self._stop.is_set():
            await self.stop(0)
        if self._token_task is not None:
            self._token_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._token_task
        await asyncio.to_thread(self.config.network.remove_pod, self.uid)
        await asyncio.to_thread(shutil.rmtree, self.dir, True)
        if self.config.namespaces:  # every container is gone: mount points may go too
            await asyncio.to_thread(mountpoints.release, self.holder)

    def exec_argv(self, container: str, command: list[str]) -> tuple[list[str], dict[str, str]]:
        """How to run ``command`` in a running container (``kubectl exec``); LookupError if
        the container is not running."""
        proc = self._processes.get(container)
        if proc is None or not proc.running:
            raise LookupError(f"container {container} is not running in pod {self.name}")
        return proc.exec_argv(command, self.config.namespaces)

    def kill_now(self) -> None:
        """SIGKILL every container at once, synchronously (the agent's exit path)."""
        for proc in self._processes.values():
            proc.kill_now()

    def running_containers(self) -> list[tuple[str, str, float]]:
        """(name, container ID, running since) of each container with a live process."""
        since = {r.name: r.running_since for r in (*self.init_records, *self.records)}
        return [
            (name, proc.spec.container_id, since.get(name) or self.start_time)
            for name, proc in self._processes.items()
            if proc.running
        ]

    @property
    def has_running_containers(self) -> bool:
        """Whether any container process of this pod is still alive."""
        return any(proc.running for proc in self._processes.values())

    @property
    def grace(self) -> float:
        """The grace period of the stop in progress (0 before any stop)."""
        return self._grace

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    async def _run(self) -> None:
        try:
            if not await self._setup():
                return
            if await self._run_init():
                await asyncio.gather(*(self._supervise(c, r, "main") for c, r in self._mains()))
            await self._end_sidecars()
        except Exception as exc:  # a failing pod never takes the agent down
            log.exception("pod %s/%s: runtime failure", self.namespace, self.name)
            for rec in self.records:
                if rec.running_since is None and rec.terminated is None:
                    rec.set_waiting("RunContainerError", str(exc))
            self._changed()

    def _mains(self) -> list[tuple[Obj, ContainerRecord]]:
        return list(
            zip(self.pod.get("spec", {}).get("containers") or [], self.records, strict=True)
        )

    async def _setup(self) -> bool:
        """Create the pod sandbox; retry (with the back-off base) while volumes are missing."""
        await asyncio.to_thread(self._claim_log_dir)
        if self.pod.get("spec", {}).get("hostNetwork"):
            self.net = PodNet(ip=self.config.network.host_ip)  # the node's network and address
        else:
            self.net = await asyncio.to_thread(self.config.network.add_pod, self.uid)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "resolv.conf").write_text(RESOLV_CONF.format(ns=self.namespace))
        self.refresh_hosts()
        self.conditions.set("PodReadyToStartContainers", True)
        while not self._stop.is_set():
            try:
                tokens = await self._issue_tokens(token_sources(self.pod))
                self._volumes = prepare_volumes(
                    self.pod,
                    self.config.state_dir,
                    self.dir,
                    self.config.lookup,
                    {(s.volume, s.path): t.token for s, t in tokens.items()},
                )
                self._tokens = tokens
                if tokens:
                    self._token_task = asyncio.create_task(
                        self._refresh_tokens(), name=f"tokens {self.namespace}/{self.name}"
                    )
                return True
            except (ConfigError, OSError, SourceError) as exc:
                for rec in self.init_records + self.records:
                    rec.set_waiting("CreateContainerConfigError", str(exc))
                self._changed()
                await self._sleep(self.config.backoff.base)
        return False

    async def _issue_tokens(self, sources: list[TokenSource]) -> dict[TokenSource, IssuedToken]:
        """A token bound to this pod for each source (none without an issuer)."""
        issuer = self.config.tokens
        if issuer is None:
            return {}
        account = str(self.pod.get("spec", {}).get("serviceAccountName") or "default")
        out = {}
        for source in sources:
            out[source] = await issuer.request_token(
                self.namespace,
                account,
                pod_name=self.name,
                pod_uid=str(self.pod["metadata"].get("uid", "")),
                audiences=[source.audience] if source.audience else [],
                expiration_seconds=source.expiration_seconds,
            )
        return out

    async def _refresh_tokens(self) -> None:
        """Replace each token once the kubelet would (80 % of its lifetime, at most 24 h),
        atomically; a failed request is retried every ``TOKEN_RETRY`` seconds. Ends with the
        pod's containers."""
        while not self._stop.is_set():
            due = min(t.refresh_at for t in self._tokens.values())
            await self._sleep(max(due - time.time(), 0.0))
            if self._stop.is_set() or (self._task is not None and self._task.done()):
                return
            failed = False
            for source, token in list(self._tokens.items()):
                if token.refresh_at > time.time():
                    continue
                try:
                    fresh = (await self._issue_tokens([source]))[source]
                    directory = self._volumes[source.volume]
                    await asyncio.to_thread(write_token, directory, source.path, fresh.token)
                except (SourceError, OSError, KeyError) as exc:
                    name = f"{self.namespace}/{self.name}"
                    log.warning("pod %s: token refresh failed: %s", name, exc)
                    failed = True
                    continue
                self._tokens[source] = fresh
            if failed:
                await self._sleep(TOKEN_RETRY)

    def _claim_log_dir(self) -> None:
        """Start this pod's logs afresh if an earlier pod of the same name left some.

        Logs outlive their pod (handy after a failed test or demo), but a pod recreated under
        the same name (a restarted job's worker) must not show its predecessor's output.
        """
        directory = self.config.state_dir / "logs" / self.namespace / self.name
        owner = directory / ".uid"
        try:
            if owner.read_text() != self.uid:
                shutil.rmtree(directory, ignore_errors=True)
        except FileNotFoundError:
            pass
        directory.mkdir(parents=True, exist_ok=True)
        owner.write_text(self.uid)

    async def _run_init(self) -> bool:
        """Run init containers in order; False if the pod failed or is stopping."""
        specs = self.pod.get("spec", {}).get("initContainers") or []
        for spec, rec in zip(specs, self.init_records, strict=True):
            if spec.get("restartPolicy") == "Always":
                await self._start_sidecar(spec, rec)
                continue
            if not await self._supervise(spec, rec, "init"):
                if not self._stop.is_set() and self.restart_policy == "Never":
                    self._init_failed = True
                    self._changed()
                return False
        self._initialized = True
        for rec in self.records:
            rec.set_waiting("ContainerCreating")
        self._changed()
        return True

    async def _start_sidecar(self, spec: Obj, rec: ContainerRecord) -> None:
        """A native sidecar (init container with ``restartPolicy: Always``): it keeps running
        beside the main containers, and the next init container starts once it has started."""
        started = asyncio.Event()
        self._started[rec.name] = started
        task = asyncio.create_task(self._supervise(spec, rec, "sidecar"))
        self._sidecars.append(task)
        waiters = {asyncio.create_task(started.wait()), asyncio.create_task(self._stop.wait())}
        await asyncio.wait({task, *waiters}, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()

    async def _end_sidecars(self) -> None:
        """Once the main containers are done for good, stop the sidecars (SIGTERM, grace)."""
        self._sidecars_ending = True
        grace = float(self.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30))
        if self._stop.is_set():
            grace = self._grace
        sidecars = {s["name"] for s in self._init_specs() if s.get("restartPolicy") == "Always"}
        procs = [(name, p) for name, p in list(self._processes.items()) if name in sidecars]
        await asyncio.gather(*(self._stop_container(name, p, grace) for name, p in procs))
        await asyncio.gather(*self._sidecars)

    def _init_specs(self) -> list[Obj]:
        return list(self.pod.get("spec", {}).get("initContainers") or [])

    async def _supervise(self, spec: Obj, rec: ContainerRecord, kind: str) -> bool:
        """Run one container (``kind``: init, sidecar or main) until the policy says stop;
        True if its last run succeeded."""
        init = kind == "init"
        backoff = Backoff(self.config.backoff)
        first = True
        while not self._stop.is_set():
            try:
                # In a thread: claiming mount points may wait on the host-wide lock.
                launch = await asyncio.to_thread(
                    self._launch_spec, spec, rec.restart_count + (0 if first else 1)
                )
                image = spec.get("image", "")
                self._event("Normal", "Pulled", f'Container image "{image}" already present')
                proc = await ContainerProcess.start(launch)
            except (ConfigError, OSError) as exc:  # the kubelet's two "could not create" cases
                reason = "CreateContainerConfigError"
                if not isinstance(exc, ConfigError):
                    reason = "CreateContainerError"
                rec.set_waiting(reason, str(exc))
                self._event("Warning", "Failed", f"Error: {exc}")
                self._changed()
                await self._sleep(self.config.backoff.base)
                continue
            self._event("Normal", "Created", f"Created container: {rec.name}")
            self._processes[rec.name] = proc
            if not first:
                rec.restart_count += 1
            first = False
            started = time.time()
            container_id = f"sandbox://{launch.container_id}"
            probes: list[asyncio.Task[None]] = []
            if proc.start_error is None:
                self._event("Normal", "Started", f"Started container {rec.name}")
                gated = not init and "startupProbe" in spec
                rec.set_running(container_id, started, started=not gated)
                if rec.name in self._started:
                    self._started[rec.name].set()
                rec.ready = not init and not gated and "readinessProbe" not in spec
                self._changed()
                if self._stop.is_set():
                    await proc.stop(self._grace)
                elif not await self._post_start(spec, rec.name, proc):
                    grace = float(self.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30))
                    await self._stop_container(rec.name, proc, grace)
                startup_passed = asyncio.Event()
                if not gated:
                    startup_passed.set()
                probes = [
                    asyncio.create_task(
                        self._probe_loop(spec, rec, proc, launch, kind, startup_passed)
                    )
                    for kind in ("startup", "readiness", "liveness")
                    if not init and f"{kind}Probe" in spec
                ]
            else:
                self._event("Warning", "Failed", f"Error: {proc.start_error}")
            code = await proc.wait()
            for task in probes:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            finished = time.time()
            error = proc.start_error
            oom = False
            if launch.cgroup is not None and self.config.memory is not None:
                oom = self.config.memory.oom_killed(launch.cgroup)
                await asyncio.to_thread(self.config.memory.remove, launch.cgroup)
            rec.container_id = container_id
            done = Terminated(
                exit_code=code,
                started_at=started,
                finished_at=finished,
                container_id=container_id,
                reason="StartError" if error else ("OOMKilled" if oom else ""),
                message=error or termination_message(spec, launch, code),
            )
            restart = not self._stop.is_set() and self._should_restart(code, kind)
            rec.set_terminated(done)
            self._changed()
            if not restart:
                return code == 0
            delay = backoff.next_delay(finished - started)
            if delay > 0:
                self._event(
                    "Warning", "BackOff", f"Back-off restarting failed container {rec.name}"
                )
                rec.set_waiting(
                    "CrashLoopBackOff",
                    f"back-off {delay:g}s restarting failed container={rec.name} "
                    f"pod={self.name}_{self.namespace}({self.uid})",
                )
                self._changed()
                await self._sleep(delay)
        return False

    async def _probe_loop(
        self,
        spec: Obj,
        rec: ContainerRecord,
        proc: ContainerProcess,
        launch: LaunchSpec,
        kind: str,
        startup_passed: asyncio.Event,
    ) -> None:
        """Probe one running container. Startup gates the others and sets ``started``;
        readiness flips ``ready``; a failed startup or liveness probe kills the container."""
        if kind != "startup":
            await startup_passed.wait()
        assert self.net is not None
        probe = spec[f"{kind}Probe"]
        env = {**launch.env, MARKER_VAR: launch.container_id}  # exec probes die with the container
        target = ProbeTarget(
            self.net.ip, spec.get("ports") or [], proc.pid, env, self.config.namespaces
        )
        counter = ProbeCounter.for_probe(probe)
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        while True:
            ok = await probe_once(probe, target)
            if not ok:
                self._event("Warning", "Unhealthy", f"{kind.capitalize()} probe failed")
            verdict = counter.record(ok)
            if kind == "startup" and verdict is True:
                rec.started = True
                rec.ready = "readinessProbe" not in spec
                startup_passed.set()
                self._changed()
                return
            if kind == "readiness" and verdict is not None and verdict != rec.ready:
                rec.ready = verdict
                self._changed()
            elif kind in ("startup", "liveness") and verdict is False:
                message = f"Container {rec.name} failed {kind} probe, will be restarted"
                self._event("Normal", "Killing", message)
                grace = probe.get("terminationGracePeriodSeconds")
                if grace is None:
                    grace = self.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)
                await self._stop_container(rec.name, proc, float(grace))
                return
            await asyncio.sleep(float(probe.get("periodSeconds", 10)))

    def _should_restart(self, code: int, kind: str) -> bool:
        if kind == "sidecar":
            return not self._sidecars_ending
        init = kind == "init"
        if self.restart_policy == "Never":
            return False
        if init or self.restart_policy == "OnFailure":
            return code != 0
        return True

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the pod is being stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    # -- container configuration -----------------------------------------------------------

    def _launch_spec(self, spec: Obj, restart: int) -> LaunchSpec:
        assert self.net is not None
        context = LaunchContext(
            pod=self.pod,
            net=self.net,
            host_ip=self.config.network.host_ip,
            pod_dir=self.dir,
            volumes=self._volumes,
            state_dir=self.config.state_dir,
            images=self.config.images,
            namespaces=self.config.namespaces,
            owner=self.config.owner,
            lookup=self.config.lookup,
            memory=self.config.memory,
            holder=self.holder,
            service_env=self.config.service.env() if self.config.service else None,
        )
        return launch_spec(context, spec, restart)

    # -- hosts and status ------------------------------------------------------------------

    def refresh_hosts(self) -> None:
        """Rewrite this pod's /etc/hosts in place from the provider (peers may have changed)."""
        if self.net is None or not self.dir.exists():
            return
        provider = self.config.hosts_provider
        if provider is not None:
            entries = provider(self)
        else:
            names = hosts.pod_names(
                hosts.pod_hostname(self.pod),
                self.pod.get("spec", {}).get("subdomain"),
                self.namespace,
            )
            entries = [hosts.HostEntry(self.net.ip, names)]
        hosts.write_in_place(self.dir / "hosts", hosts.render(entries))

    def phase(self) -> str:
        """The pod phase; terminal phases stick, as they do on a real node."""
        if self._final_phase:
            return self._final_phase
        if self._init_failed:
            phase = "Failed"
        elif not self._initialized:
            phase = "Pending"
        else:
            policy = "Never" if self._stop.is_set() else self.restart_policy
            phase = pod_phase(self.records, policy)
            if self._stop.is_set() and any(r.running_since is not None for r in self.records):
                phase = "Running"
        if phase in TERMINAL and self._sidecars_running():
            phase = "Running"  # the main containers are done; the sidecars are being stopped
        if phase in TERMINAL:
            self._final_phase = phase
        return phase

    def _sidecar_records(self) -> list[ContainerRecord]:
        return [
            rec
            for rec, spec in zip(self.init_records, self._init_specs(), strict=True)
            if spec.get("restartPolicy") == "Always"
        ]

    def _sidecars_running(self) -> bool:
        return any(rec.running_since is not None for rec in self._sidecar_records())

    def status(self) -> Json:
        """The pod's status as the kubelet writes it (PodScheduled is the scheduler's)."""
        phase = self.phase()
        # Native sidecars count toward ContainersReady, as on the kubelet.
        checked = self.records + self._sidecar_records()
        ready = bool(self.records) and all(r.ready for r in checked)
        terminal = phase in TERMINAL
        self.conditions.set(
            "Initialized",
            self._initialized,
            "" if self._initialized else "ContainersNotInitialized",
        )
        not_ready = "PodCompleted" if terminal else "ContainersNotReady"
        self.conditions.set(
            "ContainersReady", ready and not terminal, "" if ready and not terminal else not_ready
        )
        self.conditions.set(
            "Ready", ready and not terminal, "" if ready and not terminal else not_ready
        )
        if terminal:
            self.conditions.set("PodReadyToStartContainers", False)
        host_ip = self.config.network.host_ip
        out: Json = {
            "phase": phase,
            "conditions": self.conditions.to_json(),
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "startTime": rfc3339(self.start_time),
            "containerStatuses": [r.to_json() for r in self.records],
        }
        if self.net is not None:
            out["podIP"] = self.net.ip
            out["podIPs"] = [{"ip": self.net.ip}]
        if self.init_records:
            out["initContainerStatuses"] = [r.to_json() for r in self.init_records]
        return out

    def _event(self, kind: str, reason: str, message: str) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(kind, reason, message)
        except Exception:
            log.exception("pod %s/%s: event callback failed", self.namespace, self.name)

    def _changed(self) -> None:
        try:
            self._on_change()
        except Exception:
            log.exception("pod %s/%s: status callback failed", self.namespace, self.name)
