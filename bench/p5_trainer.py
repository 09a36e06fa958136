"""P5 of issue #14: the trainer's figures. Measures, never asserts.

    .venv/bin/python bench/p5_trainer.py                        # embedded control plane
    .venv/bin/python bench/p5_trainer.py --control-plane real \\
        --bin-dir ~/.cache/elastrain/control-plane/v1.37.2/bin  # or $ELASTRAIN_CONTROL_PLANE_BIN

``run(workdir, control_plane, bin_dir)`` returns one dict (``__main__`` prints it as JSON):

* ``step_time_ratio_to_plain_ddp``: the trainer's DDP step time over a hand-written DDP loop's,
  same model (built-in ``mlp``), data, global batch 64, world size 2, gloo on CPU, both in the
  same two processes in alternating blocks (``bench/p5_plain_ddp.py`` says how and why). The
  median of every step after a warm-up, rank 0's clock. No cluster involved.
* ``checkpoint_save_s`` / ``checkpoint_load_s``: the trainer's own checkpoint code
  (``_Trainer._save``: payload, ``torch.save``, fsync, rename, rotation; ``_find_checkpoint`` +
  ``_restore``: ``torch.load`` and loading the state) for the built-in ``mlp`` job, the median
  of several. The single-process path: a DDP resume adds a broadcast of the bytes.
* ``kill_to_training_s``: an elastic job (``minReplicas 1``, ``maxReplicas 3``) trains on 2
  workers; SIGKILL of the training process of worker-1 (as the demo's fault does: torchrun,
  the pod's main process, lives on) until a trainer endpoint shows a *new* rendezvous round
  with a step done in it (a new process's step gauge is 0 until its first step ends). With 2
  workers below ``maxReplicas`` 3, torch's c10d rendezvous waits its ``last_call`` timeout
  (30 s in torch 2.13; the operator sets no ``rdzv_conf``) for more nodes before it closes
  the round: that wait is in this figure, as in what such a job sees after every failure.
* ``scale_to_training_s``: then ``kubectl scale trainingjob --replicas=3`` until a trainer
  endpoint shows world size 3 in a new round with a step done in it.

"Training" is always read from the trainer itself: each worker pod's ``/metrics`` at
``<podIP>:9090`` (the sandbox gives every pod an IP reachable from the host), gauges
``elastrain_trainer_step``, ``_world_size``, ``_rendezvous_round``, ``_last_checkpoint_step``,
polled every 0.1 s with a deadline. The job runs the real trainer image (the sandbox maps it to
this venv) under ``elastrain-torchrun`` with the restricted-PSS-clean spec of the demo, paced by
``--step-delay 0.05`` (20 steps/s) so that two or three trainers leave this small machine's
CPUs to the control plane, whose speed is what the recovery figures are about. The operator is
the real one (``python -m elastrain operator --progress-interval 1``) with the admin
kubeconfig: these figures are about time, not RBAC, which the integration suite covers.

Detail keys add the parts (``*_to_new_round_s``: until the new round's first endpoint answers,
i.e. rendezvous done and the process up), the steps, world sizes and a second kill at the
job's maximum size (``kill_at_max_to_training_s``), where torch's c10d rendezvous closes the
round as soon as every node joined instead of waiting its ``last_call`` timeout (30 s in
torch 2.13) for more nodes. A figure that could not be measured is None, with ``<key>_why``
saying what was seen.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
if __name__ == "__main__" and sys.path and Path(sys.path[0]).resolve() == HERE:
    # Run as a script, Python puts bench/ first on sys.path, where a module named like one of
    # the standard library's would hide it from torch. The runner runs as `python -m bench.run`.
    del sys.path[0]
# The integration harness (operator_harness, cluster_api, sandbox_fixtures), by bare name as
# the tests import it; appended, so that nothing of tests/ hides a module of the importer's.
for _folder in (REPO / "tests" / "integration", REPO / "tests"):
    if str(_folder) not in sys.path:
        sys.path.append(str(_folder))

from elastrain_dev.trainer_gauges import Reading, one_round, scrape_pods  # noqa: E402
from elastrain_sandbox.embedded import Sandbox  # noqa: E402
from elastrain_sandbox.ports import free_port  # noqa: E402
from operator_harness import Cluster, Operator  # noqa: E402
from sandbox_fixtures import KubeconfigKubectl  # noqa: E402

if TYPE_CHECKING:  # the trainer (torch) is imported only where a figure needs it
    from elastrain_trainer.task import Task, TaskContext, TaskFactory

T = TypeVar("T")
BIN_ENV = "ELASTRAIN_CONTROL_PLANE_BIN"

# ---------------------------------------------------------------- step time: sizes
# 8 blocks per side of 250 steps: about 4,000 steps in all, ~15 s of training; starting
# the two processes (importing torch) is most of the wall time on a loaded 2-core machine.
STEP_BLOCKS = 8
STEPS_PER_BLOCK = 250
WARMUP_STEPS = 20  # per block: DDP's first iterations (bucket rebuild) and the caches
STEP_WORLD = 2
STEP_TIMEOUT = 240.0

# ---------------------------------------------------------------- checkpoints: sizes
CHECKPOINT_REPEATS = 15
LARGE_REPEATS = 3
LARGE_HIDDEN = 2048  # 16 -> 2048 -> 2048 -> 1 MLP: 4.2 M parameters, ~50 MB with Adam state

# ---------------------------------------------------------------- the cluster job
TRAINER_IMAGE = "ghcr.io/elastrain/trainer:0.1.0"
METRICS_PORT = 9090
JOB = "p5"
STEP_DELAY = 0.05
CHECKPOINT_EVERY = 20  # one checkpoint a second at 20 steps/s
POLL = 0.1
START_TIMEOUT = 150.0  # submit -> training (pods, torch import, a 30 s rendezvous last call)
KILL_TIMEOUT = 120.0
SCALE_TIMEOUT = 150.0
TIMEOUT_SCALE = {"embedded": 1.0, "real": 2.0}  # a bound on waiting, as the integration suite


class Unmeasured(Exception):
    """A figure could not be taken; the message says exactly what was seen."""


def log(message: str) -> None:
    """Progress on stderr: stdout is the JSON result alone."""
    print(f"[p5 {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rounded(value: float, digits: int = 4) -> float:
    return round(value, digits)


# ================================================================ step time vs plain DDP
def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that would change what the trainer does."""
    scrub = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TF_CONFIG")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ELASTRAIN_", "PET_", "TORCHELASTIC_")) and k not in scrub
    }
    # One thread per rank: two ranks on two cores, as each pod would get its own core.
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def _run_ranks(out: Path) -> float:
    """Start the step-time processes (one per rank), wait for them; their wall time."""
    port = free_port()
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    started = time.monotonic()
    # -P: no bench/ on the ranks' sys.path either, for the same reason.
    argv = [sys.executable, "-P", str(HERE / "p5_plain_ddp.py"), "--out", str(out)]
    argv += ["--blocks", str(STEP_BLOCKS), "--steps", str(STEPS_PER_BLOCK)]
    try:
        for rank in range(STEP_WORLD):
            env = _clean_env(
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port),
                WORLD_SIZE=str(STEP_WORLD),
                RANK=str(rank),
                LOCAL_RANK=str(rank),
            )
            path = out / f"rank{rank}.log"
            with path.open("wb") as handle:
                proc = subprocess.Popen(
                    argv, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
                )
            procs.append((proc, path))
        deadline = started + STEP_TIMEOUT
        for proc, path in procs:
            try:
                code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise Unmeasured(
                    f"the step-time ranks did not finish in {STEP_TIMEOUT:.0f}s; "
                    f"{path.name}: {_tail(path)}"
                ) from None
            if code != 0:
                raise Unmeasured(f"step-time rank exited {code}; {path.name}: {_tail(path)}")
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    return time.monotonic() - started


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _intervals(stamps: list[float]) -> list[float]:
    """Seconds per step after the warm-up."""
    return [b - a for a, b in itertools.pairwise(stamps)][WARMUP_STEPS:]


def measure_step_time(workdir: Path) -> dict[str, Any]:
    """The trainer's DDP step against a hand-written DDP step, interleaved (see module doc)."""
    workdir.mkdir(parents=True, exist_ok=True)
    wall = _run_ranks(workdir)
    blocks = json.loads((workdir / "rank0.json").read_text())
    per_block = {side: [statistics.median(_intervals(b)) for b in blocks[side]] for side in blocks}
    pooled = {side: [d for b in blocks[side] for d in _intervals(b)] for side in blocks}
    elastrain = statistics.median(pooled["elastrain"])
    plain = statistics.median(pooled["plain"])
    pairs = [
        rounded(e / p, 3) for e, p in zip(per_block["elastrain"], per_block["plain"], strict=True)
    ]
    return {
        "step_time_ratio_to_plain_ddp": rounded(elastrain / plain, 3),
        "step_time_elastrain_ms": rounded(elastrain * 1e3, 3),
        "step_time_plain_ms": rounded(plain * 1e3, 3),
        "step_time_overhead_ms": rounded((elastrain - plain) * 1e3, 3),
        # One ratio per ABBA-adjacent pair of blocks: their spread shows how stable it is.
        "step_time_block_ratios": pairs,
        "step_time_steps_measured": len(pooled["plain"]),
        "step_time_setup": (
            f"world size {STEP_WORLD}, gloo, CPU, OMP_NUM_THREADS=1, built-in mlp, global batch "
            f"64, SGD; {STEP_BLOCKS} blocks of {STEPS_PER_BLOCK} steps per side, order ABBA, "
            f"first {WARMUP_STEPS} steps of each block excluded, median, rank 0"
        ),
        "step_time_wall_s": rounded(wall, 1),
    }


# ================================================================ checkpoints
def _filesystem(path: Path) -> str:
    """The type of the file system holding ``path`` (fsync on tmpfs costs nothing)."""
    best, kind = "", "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            mount = fields[1]
            inside = str(path).startswith(mount.rstrip("/") + "/") or str(path) == mount
            if inside and len(mount) > len(best):
                best, kind = mount, fields[2]
    return kind


def _checkpoint_times(
    directory: Path, factory: TaskFactory, optimizer: str, repeats: int
) -> dict[str, Any]:
    """Median save and load times of the trainer's own checkpoint code for one task."""
    import torch
    from elastrain_trainer.cluster import DistEnv
    from elastrain_trainer.config import TrainConfig
    from elastrain_trainer.ddp import _Trainer

    config = TrainConfig(
        mode="ddp", checkpoint_dir=str(directory), metrics_port=0, optimizer=optimizer
    )
    single = DistEnv(rank=0, world_size=1, local_rank=0, restarts=0)
    trainer = _Trainer(config, factory, single, torch.device("cpu"))
    # One real step so that the optimizer has its state (Adam's moments) in the payload.
    trainer.optimizer.zero_grad()
    trainer.module(torch.randn(4, config.features)).pow(2).mean().backward()
    trainer.optimizer.step()
    trainer.first_loss = 1.0
    saves, loads = [], []
    for step in range(1, repeats + 1):
        trainer.position.step = step
        started = time.perf_counter()
        trainer._save()
        saves.append(time.perf_counter() - started)
    if trainer.checkpoints is None:
        raise Unmeasured("the trainer made no checkpoint directory")
    size = trainer.checkpoints.file_for(repeats).stat().st_size
    for _ in range(repeats):
        started = time.perf_counter()
        loaded = trainer._find_checkpoint()
        if loaded is None:
            raise Unmeasured(f"the trainer found no checkpoint in {directory} after saving")
        trainer._restore(loaded)
        loads.append(time.perf_counter() - started)
    return {
        "save": statistics.median(saves),
        "load": statistics.median(loads),
        "bytes": size,
    }


def _large_task(ctx: TaskContext) -> Task:
    """A bigger MLP on the built-in data, so the save/load figures show a bandwidth too."""
    from elastrain_trainer.builtin import regression_data
    from elastrain_trainer.task import Task
    from torch import nn

    model = nn.Sequential(
        nn.Linear(ctx.features, LARGE_HIDDEN),
        nn.Tanh(),
        nn.Linear(LARGE_HIDDEN, LARGE_HIDDEN),
        nn.Tanh(),
        nn.Linear(LARGE_HIDDEN, 1),
    )
    return Task(model=model, dataset=regression_data(ctx), loss_fn=nn.MSELoss())


def measure_checkpoints(workdir: Path) -> dict[str, Any]:
    """The trainer's checkpoint save and load, for the built-in mlp job (the headline) and for
    a 4 M-parameter model with Adam state (detail: what the bytes cost)."""
    from elastrain_trainer.builtin import BUILTIN

    workdir.mkdir(parents=True, exist_ok=True)
    small = _checkpoint_times(workdir / "mlp", BUILTIN["mlp"], "sgd", CHECKPOINT_REPEATS)
    large = _checkpoint_times(workdir / "large", _large_task, "adam", LARGE_REPEATS)
    return {
        "checkpoint_save_s": rounded(small["save"], 5),
        "checkpoint_load_s": rounded(small["load"], 5),
        "checkpoint_bytes": small["bytes"],
        "checkpoint_large_save_s": rounded(large["save"], 4),
        "checkpoint_large_load_s": rounded(large["load"], 4),
        "checkpoint_large_bytes": large["bytes"],
        "checkpoint_filesystem": _filesystem(workdir.resolve()),
        "checkpoint_setup": (
            f"single process, the trainer's _Trainer._save and _find_checkpoint+_restore; "
            f"built-in mlp + SGD, median of {CHECKPOINT_REPEATS}; large: "
            f"16-{LARGE_HIDDEN}-{LARGE_HIDDEN}-1 MLP + Adam, median of {LARGE_REPEATS}; "
            "loads read a file just written (page cache warm)"
        ),
    }


# ================================================================ the cluster figures
def trainer_job() -> dict[str, Any]:
    """The elastic DDP job: the demo's restricted-PSS-clean spec, 2 of at most 3 workers."""
    args = f"--mode ddp --model mlp --steps 1000000 --step-delay {STEP_DELAY} --log-every 200"
    args += f" --checkpoint-every {CHECKPOINT_EVERY} --checkpoint-dir /ckpt"
    args += f" --metrics-port {METRICS_PORT}"
    container = {
        "name": "trainer",
        "image": TRAINER_IMAGE,
        "command": ["elastrain-torchrun", "--no-python", "elastrain-train"],
        "args": args.split(),
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "volumeMounts": [{"name": "ckpt", "mountPath": "/ckpt"}],
    }
    pod = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "ckpt", "emptyDir": {}}],
    }
    return {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": JOB},
        "spec": {
            "elasticPolicy": {"minReplicas": 1, "maxReplicas": 3, "maxRestarts": 10},
            "replicaSpecs": {
                "worker": {"replicas": 2, "restartPolicy": "OnFailure", "template": {"spec": pod}}
            },
            "runPolicy": {
                "backoffLimit": 10,
                "cleanPodPolicy": "All",
                "restartBackoff": {"initialSeconds": 1, "maxSeconds": 10},
            },
        },
    }


class Watch:
    """Reads the job's pods and their trainers' endpoints; explains a timeout in detail."""

    def __init__(self, cluster: Any, namespace: str, scale: float) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.scale = scale
        self.last: list[Reading] = []
        self.pods: list[dict[str, Any]] = []

    def poll(self) -> list[Reading]:
        """One GET of the pods, one scrape per pod with an IP (down endpoints are skipped)."""
        self.pods = self.cluster.pods(self.namespace, JOB)
        self.last = scrape_pods(self.pods, METRICS_PORT)
        return self.last

    def pod(self, index: int) -> dict[str, Any] | None:
        for pod in self.pods:
            if pod["metadata"]["labels"].get("elastrain.dev/replica-index") == str(index):
                return pod
        return None

    def until(self, what: str, check: Callable[[list[Reading]], T | None], timeout: float) -> T:
        """Poll until ``check`` answers; on the deadline, raise with what was last seen."""
        deadline = time.monotonic() + timeout * self.scale
        while True:
            got = check(self.poll())
            if got:
                return got
            if time.monotonic() > deadline:
                limit = timeout * self.scale
                raise Unmeasured(
                    f"timed out after {limit:.0f}s waiting for {what}; {self.describe()}"
                )
            time.sleep(POLL)

    def describe(self) -> str:
        """The last readings, the job's phase and the pods' states and log tails."""
        job = self.cluster.job(self.namespace, JOB) or {}
        status = job.get("status") or {}
        parts = [
            f"trainer gauges: {[r.__dict__ for r in self.last] or 'no endpoint answered'}",
            f"job phase {status.get('phase')!r}, progress {status.get('progress')}",
        ]
        for pod in self.pods:
            name = pod["metadata"]["name"]
            states = [
                (s.get("restartCount"), list((s.get("state") or {}).keys()))
                for s in (pod.get("status") or {}).get("containerStatuses") or []
            ]
            logs = self.cluster.kubectl(
                "logs", "-n", self.namespace, name, "--tail=4", check=False
            ).stdout.strip()
            parts.append(f"{name}: {pod.get('status', {}).get('phase')} {states}; log: {logs!r}")
        return "; ".join(parts)


def _kill_trainer(watch: Watch, index: int) -> tuple[list[int], float]:
    """SIGKILL the training process of worker ``index`` (the demo's fault); pids and when."""
    from elastrain_dev.demo.fault import FaultError, kill_on_sandbox

    pod = watch.pod(index)
    if pod is None:
        raise Unmeasured(f"no worker-{index} pod to kill; {watch.describe()}")
    try:
        started = time.monotonic()
        pids = kill_on_sandbox(pod)
    except FaultError as exc:
        raise Unmeasured(f"could not kill worker-{index}'s trainer: {exc}") from None
    return pids, started


def _after_kill(watch: Watch, prefix: str, world: int, index: int) -> dict[str, Any]:
    """Kill worker ``index``'s trainer at ``world`` ranks; time until training again."""

    def checkpointed(readings: list[Reading]) -> Reading | None:
        current = one_round(readings, world)
        return current if current is not None and current.checkpoint >= 0 else None

    before = watch.until(f"{world} ranks training with a checkpoint", checkpointed, KILL_TIMEOUT)
    old_round = before.round
    pids, started = _kill_trainer(watch, index)
    log(f"{prefix}: SIGKILL {pids} in worker-{index} at step {before.step}, round {old_round}")
    new_round = watch.until(
        "a trainer of a new rendezvous round",
        lambda rs: next((r for r in rs if r.round > old_round), None),
        KILL_TIMEOUT,
    )
    new_round_s = time.monotonic() - started
    resumed = watch.until(
        "a step done in the new round",
        lambda rs: next((r for r in rs if r.round > old_round and r.trained), None),
        KILL_TIMEOUT,
    )
    elapsed = time.monotonic() - started
    log(f"{prefix}: training again after {elapsed:.2f}s (world {resumed.world_size})")
    return {
        f"{prefix}_to_training_s": rounded(elapsed, 2),
        f"{prefix}_to_new_round_s": rounded(new_round_s, 2),
        f"{prefix}_step_at_kill": before.step,
        f"{prefix}_checkpoint_at_kill": before.checkpoint,
        f"{prefix}_first_step_seen_after": resumed.step,
        f"{prefix}_world_size_before": world,
        f"{prefix}_world_size_after": resumed.world_size,
        f"{prefix}_rounds": [old_round, new_round.round],
    }


def _after_scale(watch: Watch, cluster: Any, namespace: str) -> dict[str, Any]:
    """``kubectl scale`` 2 -> 3; time until 3 ranks train in a new round."""
    before = watch.until("2 ranks training", lambda rs: one_round(rs, 2), SCALE_TIMEOUT)
    old_round = before.round
    started = time.monotonic()
    cluster.kubectl("-n", namespace, "scale", "trainingjob", JOB, "--replicas=3")
    log(f"scale: kubectl scale --replicas=3 at step {before.step}, round {old_round}")
    marks: dict[str, float] = {}

    def at_three(readings: list[Reading]) -> Reading | None:
        now = time.monotonic() - started
        new = watch.pod(2)
        statuses = ((new or {}).get("status") or {}).get("containerStatuses") or []
        if any("running" in (s.get("state") or {}) for s in statuses):
            marks.setdefault("pod_running", now)
        if any(r.round > old_round for r in readings):
            marks.setdefault("new_round", now)
        if any(r.round > old_round and r.world_size == 3 for r in readings):
            marks.setdefault("world_size_3", now)
        return next(
            (r for r in readings if r.round > old_round and r.world_size == 3 and r.trained),
            None,
        )

    try:
        reached = watch.until("3 ranks training in a new round", at_three, SCALE_TIMEOUT)
    except Unmeasured as exc:
        raise Unmeasured(f"{exc}; marks after the scale command (s): {marks}") from None
    elapsed = time.monotonic() - started
    log(f"scale: training at world size 3 after {elapsed:.2f}s")
    figures: dict[str, Any] = {
        "scale_to_training_s": rounded(elapsed, 2),
        "scale_step_at_command": before.step,
        "scale_first_step_seen_after": reached.step,
        "scale_world_sizes": [2, reached.world_size],
        "scale_rounds": [old_round, reached.round],
    }
    # The parts: the new pod's container running (API), the first endpoint of a new round
    # (rendezvous done, processes up), the first at world size 3 (differs only if the running
    # workers formed a round of their own before the new pod joined).
    for mark, seconds in marks.items():
        figures[f"scale_to_{mark}_s"] = rounded(seconds, 2)
    return figures


def _measure_job(cluster: Any, operator: Any, kind: str) -> dict[str, Any]:
    """Submit the job, then kill at 2, scale to 3, kill at 3; a failed phase gives its why."""
    namespace = cluster.namespace("p5")
    watch = Watch(cluster, namespace, TIMEOUT_SCALE[kind])
    out: dict[str, Any] = {}
    started = time.monotonic()
    cluster.apply(namespace, trainer_job())
    try:
        watch.until("2 ranks training", lambda rs: one_round(rs, 2), START_TIMEOUT)
    except Unmeasured as exc:
        why = f"the job never trained on 2 ranks: {exc}"
        return {key: value for k in CLUSTER_KEYS for key, value in ((k, None), (f"{k}_why", why))}
    out["submit_to_training_s"] = rounded(time.monotonic() - started, 2)
    log(f"job training on 2 ranks {out['submit_to_training_s']}s after kubectl apply")
    phases: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("kill_to_training_s", lambda: _after_kill(watch, "kill", 2, 1)),
        ("scale_to_training_s", lambda: _after_scale(watch, cluster, namespace)),
        ("kill_at_max_to_training_s", lambda: _after_kill(watch, "kill_at_max", 3, 1)),
    ]
    for key, phase in phases:
        try:
            out.update(phase())
        except Exception as exc:  # one phase's failure keeps the figures of the others
            why = str(exc) if isinstance(exc, Unmeasured) else f"{type(exc).__name__}: {exc}"
            out[key], out[f"{key}_why"] = None, why
            log(f"{key}: not measured: {why[:300]}")
    if operator.proc.poll() is not None:
        out["operator_exit"] = operator.proc.returncode
    return out


@contextlib.contextmanager
def _cluster(kind: str, root: Path, bin_dir: Path | None) -> Iterator[Any]:
    """The embedded sandbox or the real control plane, both with the sandbox's node agent,
    and the CRD installed."""
    if kind == "embedded":
        backend: Any = Sandbox(nodes=2, state_dir=root / "sandbox")
    elif kind == "real":
        if bin_dir is None:
            raise Unmeasured(f"the real control plane needs its binaries (--bin-dir or ${BIN_ENV})")
        from elastrain_sandbox.realcluster import RealCluster

        backend = RealCluster(root / "state", root / "admin.kubeconfig", bin_dir, nodes=2)
    else:
        raise Unmeasured(f"unknown control plane {kind!r} (embedded or real)")
    backend.start()
    kubectl = KubeconfigKubectl(backend.kubeconfig_path)
    cluster = Cluster(backend.kubeconfig_path, kubectl, kind=kind)
    try:
        cluster.install_crd()
        yield cluster
    finally:
        cluster.close()
        kubectl.close()
        backend.stop()


def measure_cluster(workdir: Path, control_plane: str, bin_dir: Path | None) -> dict[str, Any]:
    """Kill and scale recovery on the real operator and trainer, on ``control_plane``."""
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with _cluster(control_plane, workdir, bin_dir) as cluster:
        log(f"{control_plane} cluster up in {time.monotonic() - started:.1f}s")
        operator = Operator(
            cluster.kubeconfig_path, workdir / "operator.log", "--progress-interval", "1"
        ).start()
        try:
            return _measure_job(cluster, operator, control_plane)
        finally:
            operator.kill()


# ================================================================ all together
CLUSTER_KEYS = ("kill_to_training_s", "scale_to_training_s")


def _guarded(
    keys: tuple[str, ...], measure: Callable[[], dict[str, Any]], what: str
) -> dict[str, Any]:
    """``measure()``, or None for each of ``keys`` with the reason when it fails as a whole."""
    try:
        return measure()
    except Exception as exc:  # a bench reports what broke; it never takes the runner down
        why = f"{what} failed: {type(exc).__name__}: {exc}"
        log(why[:500])
        out: dict[str, Any] = {}
        for key in keys:
            out[key], out[f"{key}_why"] = None, why
        return out


def run(workdir: Path, control_plane: str, bin_dir: Path | None) -> dict[str, Any]:
    """Every P5 figure, measured on this machine; see the module doc for what each means."""
    workdir = Path(workdir)
    # Every figure here is wall time on a machine others may share: the load says how busy.
    result: dict[str, Any] = {
        "control_plane": control_plane,
        "load_average_1m_at_start": rounded(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    started = time.monotonic()
    log("step time: the trainer vs a plain DDP loop, 2 ranks")
    result |= _guarded(
        ("step_time_ratio_to_plain_ddp",),
        lambda: measure_step_time(workdir / "steptime"),
        "step-time comparison",
    )
    log("checkpoint save and load")
    result |= _guarded(
        ("checkpoint_save_s", "checkpoint_load_s"),
        lambda: measure_checkpoints(workdir / "checkpoints"),
        "checkpoint timing",
    )
    log(f"kill and scale recovery on the {control_plane} control plane")
    result |= _guarded(
        CLUSTER_KEYS,
        lambda: measure_cluster(workdir / "cluster", control_plane, bin_dir),
        f"the {control_plane} cluster run",
    )
    result["wall_s"] = rounded(time.monotonic() - started, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description="P5 of #14: the trainer's figures, as JSON")
    parser.add_argument("--control-plane", choices=("embedded", "real"), default="embedded")
    parser.add_argument(
        "--bin-dir",
        type=Path,
        default=Path(os.environ[BIN_ENV]) if os.environ.get(BIN_ENV) else None,
        help=f"the real control plane's binaries (default: ${BIN_ENV})",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep state and logs here (default: a temp dir)"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="elastrain-p5-"))
    try:
        print(json.dumps(run(workdir, args.control_plane, args.bin_dir), indent=1))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
