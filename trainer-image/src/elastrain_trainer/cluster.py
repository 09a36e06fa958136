"""Where this process sits in the job: parameter-server cluster spec or DDP rank/world.

The operator describes a ps job twice, as `ELASTRAIN_CLUSTER`/`ELASTRAIN_ROLE`/`ELASTRAIN_INDEX`
and as TFJob-style `TF_CONFIG`; either is accepted (the ELASTRAIN_* form wins) so that the same
image also runs under Kubeflow's TFJob. A malformed spec is a UsageError, never a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from elastrain_trainer.errors import REGROUP_EXIT_ENV, UsageError

PS_ROLE = "ps"
WORKER_ROLES = ("worker", "chief", "master")


@dataclass(frozen=True)
class Address:
    """One `host:port` of the cluster spec."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, where: str) -> Address:
        host, sep, port = str(text).rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"{where}: {text!r} is not host:port")
        return cls(host.strip("[]"), int(port))


@dataclass(frozen=True)
class ClusterSpec:
    """ps replicas, worker replicas and this process's role/index in them.

    Workers are the `worker` list; a TFJob `chief`/`master` entry, if present, is put first, so
    it becomes worker 0 (the one that prints the job summary).
    """

    ps: tuple[Address, ...]
    workers: tuple[Address, ...]
    role: str
    index: int

    @property
    def is_ps(self) -> bool:
        return self.role == PS_ROLE


def _addresses(value: object, where: str) -> tuple[Address, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where}: expected a list of 'host:port' strings")
    return tuple(Address.parse(v, where) for v in value)


def _build(cluster: object, role: str, index_text: object, source: str) -> ClusterSpec:
    if not isinstance(cluster, dict):
        raise UsageError(f"{source}: cluster must be an object of role -> [host:port]")
    ps = _addresses(cluster.get(PS_ROLE, []), f"{source} ps")
    workers: tuple[Address, ...] = ()
    chief_count = 0
    for name in ("chief", "master", "worker"):
        if name in cluster:
            got = _addresses(cluster[name], f"{source} {name}")
            workers += got
            if name != "worker":
                chief_count += len(got)
    role = role.lower()
    try:
        index = int(str(index_text))
    except ValueError:
        raise UsageError(f"{source}: index {index_text!r} is not an integer") from None
    if role == PS_ROLE:
        count = len(ps)
    elif role in WORKER_ROLES:
        count = len(workers)
        if role == "worker":
            index += chief_count
    else:
        raise UsageError(f"{source}: role {role!r} must be ps or worker")
    if not 0 <= index < count:
        raise UsageError(f"{source}: {role} index {index_text} outside the {count} listed")
    if not ps or not workers:
        raise UsageError(f"{source}: parameter-server mode needs at least one ps and one worker")
    return ClusterSpec(
        ps=ps, workers=workers, role=PS_ROLE if role == PS_ROLE else "worker", index=index
    )


def cluster_from_env(env: Mapping[str, str] | None = None) -> ClusterSpec | None:
    """The ps cluster spec from ELASTRAIN_CLUSTER (+ROLE/INDEX) or TF_CONFIG, or None."""
    environ = os.environ if env is None else env
    raw = environ.get("ELASTRAIN_CLUSTER")
    if raw:
        cluster = _json(raw, "ELASTRAIN_CLUSTER")
        role = environ.get("ELASTRAIN_ROLE")
        if not role:
            raise UsageError("ELASTRAIN_CLUSTER is set but ELASTRAIN_ROLE is not")
        return _build(cluster, role, environ.get("ELASTRAIN_INDEX", "0"), "ELASTRAIN_CLUSTER")
    raw = environ.get("TF_CONFIG")
    if raw:
        config = _json(raw, "TF_CONFIG")
        if not isinstance(config, dict):
            raise UsageError("TF_CONFIG: expected an object with cluster and task")
        task = config.get("task")
        if not isinstance(task, dict) or "type" not in task:
            raise UsageError("TF_CONFIG: task.type is missing")
        return _build(config.get("cluster"), str(task["type"]), task.get("index", 0), "TF_CONFIG")
    return None


def has_ps_role(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment describes a parameter-server job (for --mode auto)."""
    environ = os.environ if env is None else env
    for name in ("ELASTRAIN_CLUSTER", "TF_CONFIG"):
        raw = environ.get(name)
        if not raw:
            continue
        value = _json(raw, name)
        cluster = value.get("cluster") if name == "TF_CONFIG" and isinstance(value, dict) else value
        return isinstance(cluster, dict) and bool(cluster.get(PS_ROLE))
    return False


def _json(raw: str, name: str) -> object:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name} is not valid JSON: {exc}") from None


@dataclass(frozen=True)
class DistEnv:
    """Rank and world of a DDP process, as torchrun or plain MASTER_ADDR wiring sets them."""

    rank: int
    world_size: int
    local_rank: int
    restarts: int
    # The exit code that tells the launcher "a peer left on purpose, I am healthy", when the
    # launcher understands one (`elastrain-torchrun` does); None: exit as preempted.
    regroup_exit: int | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_env_from_env(env: Mapping[str, str] | None = None) -> DistEnv:
    """RANK/WORLD_SIZE/LOCAL_RANK (torchrun's per-round values win over the operator's static
    ones because torchrun overwrites them in the worker's environment)."""
    environ = os.environ if env is None else env

    def number(name: str, default: int) -> int:
        raw = environ.get(name)
        if raw in (None, ""):
            return default
        try:
            return int(raw)
        except ValueError:
            raise UsageError(f"{name}={raw!r} is not an integer") from None

    world = number("WORLD_SIZE", 1)
    rank = number("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"RANK={rank} WORLD_SIZE={world} is not a valid rank/world pair")
    if world > 1 and not (environ.get("MASTER_ADDR") and environ.get("MASTER_PORT")):
        raise UsageError("WORLD_SIZE > 1 needs MASTER_ADDR and MASTER_PORT (or run under torchrun)")
    return DistEnv(
        rank=rank,
        world_size=world,
        local_rank=number("LOCAL_RANK", 0),
        restarts=number("TORCHELASTIC_RESTART_COUNT", 0),
        regroup_exit=number(REGROUP_EXIT_ENV, 0) or None,
    )
