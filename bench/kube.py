"""The driver's side of the API: a small aiohttp client, watches that timestamp every event,
the bench's TrainingJob bodies, and the raw client that sets the API-bound limit.

Every timing the bench reports is taken in the driver, on one monotonic clock, at the moment
a watch event arrives from the API server. Server timestamps (``creationTimestamp``, a
container's ``finishedAt``) have one-second resolution on a real cluster, too coarse for
latencies of tens of milliseconds; the watch is the API's own account of when a change became
visible, which is what a user or a controller would observe.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from elastrain_sandbox.agent.kubeclient import KubeClient, KubeConfig
from elastrain_sandbox.agent.source import SourceError

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[1]
CRD = REPO / "crds" / "trainingjobs.elastrain.dev.yaml"
TJ_PATH = "/apis/elastrain.dev/v1alpha1/namespaces/{ns}/trainingjobs"
JOB_LABEL = "elastrain.dev/job-name"
ROLE_LABEL = "elastrain.dev/replica-type"
DRIVER_AGENT = "elastrain-bench-driver"
RAW_AGENT = "elastrain-bench-raw"
# Pods of every bench job: 1 parameter server and 4 workers (issue #14).
PS, WORKERS = 1, 4
PODS_PER_JOB = PS + WORKERS


def client(kubeconfig: Path, user_agent: str = DRIVER_AGENT) -> KubeClient:
    """A client whose ``User-Agent`` tells the server's record that it is the bench, not the
    operator (P2 counts the operator's requests only)."""
    return KubeClient(KubeConfig.load(kubeconfig), user_agent=user_agent)


async def poll(fn: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Await ``fn()`` (a coroutine function) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def install_crd(api: KubeClient) -> None:
    """Create the TrainingJob CRD and wait until it is served (``Established``)."""
    body = yaml.safe_load(CRD.read_text())
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    try:
        await api.request("POST", path, body)
    except SourceError as exc:
        if exc.code != 409:
            raise

    async def established() -> bool:
        crd = await api.get(f"{path}/{body['metadata']['name']}")
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    await poll(established, 60, "the TrainingJob CRD Established")
    # A real API server serves a new CRD a moment after Established: wait for a list to work.
    await poll(lambda: _lists(api, TJ_PATH.format(ns="default")), 60, "trainingjobs served")


async def _lists(api: KubeClient, path: str) -> bool:
    try:
        await api.get(path)
    except SourceError:
        return False
    return True


async def namespace(api: KubeClient, name: str) -> str:
    """Create a namespace and wait for its ``default`` ServiceAccount (a real cluster refuses
    pods until the ServiceAccount controller has made it)."""
    await api.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    path = f"/api/v1/namespaces/{name}/serviceaccounts/default"
    await poll(lambda: _lists(api, path), 60, f"the default ServiceAccount of {name}")
    return name


async def delete_namespace(api: KubeClient, name: str, timeout: float = 120) -> bool:
    """Force-delete the namespace's pods (a cluster without a node agent never finishes a
    graceful deletion), then the namespace; True once it is gone."""
    # Deleting thousands of pods in one request can outlast a client's usual 30 s on a busy
    # server; the namespace controller finishes whatever a cut-short request left.
    for path, params in (
        (f"/api/v1/namespaces/{name}/pods", {"gracePeriodSeconds": "0"}),
        (f"/api/v1/namespaces/{name}", {}),
    ):
        try:
            await api.request("DELETE", path, params=params, timeout=timeout)
        except SourceError as exc:
            if exc.code not in (0, 404):
                raise

    async def gone() -> bool:
        try:
            await api.get(f"/api/v1/namespaces/{name}")
        except SourceError as exc:
            return exc.code == 404
        return False

    try:
        await poll(gone, timeout, f"namespace {name} deleted", interval=0.5)
    except TimeoutError:
        return False
    return True


# ---------------------------------------------------------------------- job bodies
def _role(replicas: int, command: str, policy: str) -> Obj:
    container: Obj = {
        "name": "main",
        "image": "busybox",
        "command": ["sh", "-c", command],
        # The failure scenario picks its failing pod by name.
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    }
    # A shell as PID 1 ignores SIGTERM: one second of grace, not thirty, when the operator
    # stops the parameter server of a finished job.
    spec = {"terminationGracePeriodSeconds": 1, "containers": [container]}
    return {"replicas": replicas, "restartPolicy": policy, "template": {"spec": spec}}


def job_body(
    name: str,
    worker_command: str,
    *,
    ps_command: str = "exec sleep 3600",
    worker_policy: str = "OnFailure",
    ttl: int | None = 0,
    backoff_limit: int | None = None,
) -> Obj:
    """A TrainingJob with 1 ps and 4 workers running ``sh -c`` commands, restart back-off 0 (a
    replacement is created as soon as a failure is seen) and TTL 0 (deleted once finished).
    Parameter servers never exit on their own; the operator stops them when the job ends."""
    run_policy: Obj = {"restartBackoff": {"initialSeconds": 0, "maxSeconds": 0}}
    if ttl is not None:
        run_policy["ttlSecondsAfterFinished"] = ttl
    if backoff_limit is not None:
        run_policy["backoffLimit"] = backoff_limit
    return {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "replicaSpecs": {
                "ps": _role(PS, ps_command, "OnFailure"),
                "worker": _role(WORKERS, worker_command, worker_policy),
            },
            "runPolicy": run_policy,
        },
    }


async def create_jobs(
    api: KubeClient,
    ns: str,
    bodies: Iterable[Obj],
    sent: dict[str, float],
    concurrency: int = 16,
) -> None:
    """POST every job as fast as the server answers (``concurrency`` requests in flight);
    ``sent[name]`` is when each POST went out."""
    sem = asyncio.Semaphore(concurrency)
    path = TJ_PATH.format(ns=ns)

    async def one(body: Obj) -> None:
        async with sem:
            sent[body["metadata"]["name"]] = time.monotonic()
            await api.request("POST", path, body)

    await asyncio.gather(*(one(b) for b in bodies))


async def create_paced(
    api: KubeClient, ns: str, bodies: list[Obj], rate: float, sent: dict[str, float]
) -> None:
    """POST one job every ``1/rate`` seconds on a fixed schedule (a late POST does not shift
    the later ones), each in its own task so a slow answer never delays the next."""
    path = TJ_PATH.format(ns=ns)
    start = time.monotonic()
    tasks = []
    for i, body in enumerate(bodies):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[body["metadata"]["name"]] = time.monotonic()
        tasks.append(asyncio.create_task(api.request("POST", path, body)))
    await asyncio.gather(*tasks)


# ---------------------------------------------------------------------- watches
class Watch:
    """Follow one collection: list, then watch from its resourceVersion, resuming after the
    server ends a watch and relisting after a 410; ``on_event(type, obj, t)`` gets each event
    with ``t = time.monotonic()`` at arrival (a relist replays objects as ADDED)."""

    def __init__(
        self, api: KubeClient, path: str, on_event: Callable[[str, Obj, float], None]
    ) -> None:
        self.api = api
        self.path = path
        self.on_event = on_event
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Watch:
        self._task = asyncio.create_task(self._run(), name=f"watch {self.path}")
        ready = asyncio.create_task(self.ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            ready.cancel()
            self._task.result()  # raises what failed
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        version = await self._list()
        self.ready.set()
        while True:
            try:
                async for event in self.api.watch(
                    self.path, {"resourceVersion": version, "allowWatchBookmarks": "true"}, 600
                ):
                    now = time.monotonic()
                    obj = event.get("object") or {}
                    kind = event.get("type", "")
                    if kind == "ERROR":
                        version = await self._list()
                        break
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if kind != "BOOKMARK":
                        self.on_event(kind, obj, now)
            except SourceError:
                await asyncio.sleep(0.5)
                version = await self._list()

    async def _list(self) -> str:
        listed = await self.api.get(self.path)
        now = time.monotonic()
        for obj in listed.get("items") or []:
            self.on_event("ADDED", obj, now)
        return str((listed.get("metadata") or {}).get("resourceVersion") or "0")


@dataclass
class PodLife:
    """One pod (one uid) as the watch saw it."""

    name: str
    job: str
    added: float
    running: float | None = None
    failed: float | None = None
    deleted: float | None = None


@dataclass
class Pods:
    """Every pod uid of a namespace with the times its states were first seen."""

    by_uid: dict[str, PodLife] = field(default_factory=dict)
    # The first created pod of each role (what the operator sent, before status): the raw
    # client copies these so that it creates the very same objects.
    samples: dict[str, Obj] = field(default_factory=dict)

    def on_event(self, kind: str, obj: Obj, now: float) -> None:
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        life = self.by_uid.get(uid)
        if life is None:
            labels = meta.get("labels") or {}
            life = PodLife(str(meta.get("name")), str(labels.get(JOB_LABEL, "")), now)
            self.by_uid[uid] = life
            role = labels.get(ROLE_LABEL)
            if role and role not in self.samples:
                self.samples[role] = obj
        phase = (obj.get("status") or {}).get("phase")
        if phase == "Running" and life.running is None:
            life.running = now
        if phase == "Failed" and life.failed is None:
            life.failed = now
        if kind == "DELETED" and life.deleted is None:
            life.deleted = now

    def live(self) -> int:
        return sum(1 for p in self.by_uid.values() if p.deleted is None)

    def job_complete_times(self, per_job: int = PODS_PER_JOB) -> dict[str, float]:
        """When each job's ``per_job``-th pod appeared (its first pods only)."""
        added: dict[str, list[float]] = {}
        for life in self.by_uid.values():
            added.setdefault(life.job, []).append(life.added)
        return {job: sorted(ts)[per_job - 1] for job, ts in added.items() if len(ts) >= per_job}

    def replacements(self) -> list[tuple[float, float | None]]:
        """For each failed pod that got a successor of the same name: (seconds from the failure
        seen to the successor's creation seen, seconds from the deletion seen to it)."""
        by_name: dict[str, list[PodLife]] = {}
        for life in self.by_uid.values():
            by_name.setdefault(life.name, []).append(life)
        out: list[tuple[float, float | None]] = []
        for lives in by_name.values():
            lives.sort(key=lambda p: p.added)
            for old, new in itertools.pairwise(lives):
                if old.failed is not None:
                    from_delete = None if old.deleted is None else new.added - old.deleted
                    out.append((new.added - old.failed, from_delete))
        return out


@dataclass
class Jobs:
    """Every TrainingJob of a namespace: when it was first seen Running, Succeeded, deleted."""

    running: dict[str, float] = field(default_factory=dict)
    succeeded: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def on_event(self, kind: str, obj: Obj, now: float) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        self.seen.add(name)
        phase = (obj.get("status") or {}).get("phase")
        if phase == "Running":
            self.running.setdefault(name, now)
        if phase == "Succeeded":
            self.succeeded.setdefault(name, now)
        if kind == "DELETED":
            self.deleted.setdefault(name, now)


# ---------------------------------------------------------------------- the raw client
def raw_objects(samples: dict[str, Obj], service: Obj, jobs: int) -> list[list[tuple[str, Obj]]]:
    """The objects the operator creates for ``jobs`` jobs, copied from what it really sent
    (one pod per role and one Service), renamed per job, with server-set fields removed and
    the ``elastrain.dev/`` labels renamed so that the operator's label-selected watches never
    see them. One list per job: its Service, then its pods."""
    out: list[list[tuple[str, Obj]]] = []
    for j in range(jobs):
        job = f"raw-{j}"
        objs = [("services", _clean(service, job))]
        for role, count in (("ps", PS), ("worker", WORKERS)):
            for k in range(count):
                objs.append(("pods", _clean(samples[role], f"{job}-{role}-{k}")))
        out.append(objs)
    return out


def _clean(obj: Obj, name: str) -> Obj:
    body = copy.deepcopy(obj)
    meta = body["metadata"]
    labels = {
        (k.replace("elastrain.dev/", "bench.elastrain.dev/")): v
        for k, v in (meta.get("labels") or {}).items()
    }
    body["metadata"] = {"name": name, "labels": labels}
    if meta.get("annotations"):
        body["metadata"]["annotations"] = meta["annotations"]
    body.pop("status", None)
    spec = body.get("spec") or {}
    spec.pop("nodeName", None)
    if spec.get("clusterIP") != "None":
        spec.pop("clusterIP", None)
    spec.pop("clusterIPs", None)
    if isinstance(spec.get("selector"), dict):
        spec["selector"] = {
            k.replace("elastrain.dev/", "bench.elastrain.dev/"): v
            for k, v in spec["selector"].items()
        }
    return body


async def raw_create(
    api: KubeClient, ns: str, objects: list[list[tuple[str, Obj]]], concurrency: int
) -> float:
    """Create every object directly (each job's Service before its pods, as the operator
    does), ``concurrency`` requests in flight; returns the seconds from the first request
    to the last answer."""
    sem = asyncio.Semaphore(concurrency)

    async def job(objs: list[tuple[str, Obj]]) -> None:
        for plural, body in objs[:1]:
            async with sem:
                await api.request("POST", f"/api/v1/namespaces/{ns}/{plural}", body)
        await asyncio.gather(*(one(plural, body) for plural, body in objs[1:]))

    async def one(plural: str, body: Obj) -> None:
        async with sem:
            await api.request("POST", f"/api/v1/namespaces/{ns}/{plural}", body)

    start = time.monotonic()
    await asyncio.gather(*(job(objs) for objs in objects))
    return time.monotonic() - start
