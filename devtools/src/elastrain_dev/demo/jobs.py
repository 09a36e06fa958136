"""The demo's TrainingJobs: the manifests under ``examples/demo/`` and what is derived from them.

Nothing about a job is hard-coded here beyond which manifests to submit: names, roles and
replica counts are read from the manifests themselves, so editing a manifest is enough to change
what the demo runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from elastrain.api import constants as c
from elastrain_sandbox.agent.images import repository

# Submitted in this order. The DDP job is the one whose worker the demo kills.
MANIFESTS = ("ddp.yaml", "ps.yaml")
TRAINER_REPOSITORY = "elastrain/trainer"
STEPS_FLAG = "--steps"
STEPS_ENV = "ELASTRAIN_STEPS"


@dataclass(frozen=True)
class DemoJob:
    """One job of the demo: its manifest and the parsed TrainingJob object."""

    manifest: Path
    obj: dict[str, Any]

    @property
    def name(self) -> str:
        """``metadata.name``."""
        return str(self.obj["metadata"]["name"])

    @property
    def replicas(self) -> dict[str, int]:
        """Replicas per role, in the order the operator lists roles."""
        specs = self.obj["spec"]["replicaSpecs"]
        return {role: int(specs[role].get("replicas", 1)) for role in c.ROLES if role in specs}

    @property
    def is_ps(self) -> bool:
        """A parameter-server job (has a ``ps`` role) rather than an allreduce (DDP) one."""
        return c.ROLE_PS in self.replicas

    @property
    def description(self) -> str:
        """``DDP: 2 workers`` / ``parameter server: 1 ps + 2 workers``."""
        counts = [
            f"{n} {role if n == 1 or role == c.ROLE_PS else role + 's'}"
            for role, n in self.replicas.items()
        ]
        return f"{'parameter server' if self.is_ps else 'DDP'}: {' + '.join(counts)}"

    def pod_name(self, role: str, index: int) -> str:
        """The operator's deterministic child name, ``<job>-<role>-<index>``."""
        return f"{self.name}-{role}-{index}"

    @property
    def total_steps(self) -> int | None:
        """The trainer's ``--steps`` (flag or ``ELASTRAIN_STEPS``) from the worker template."""
        container = self.obj["spec"]["replicaSpecs"][c.ROLE_WORKER]["template"]["spec"][
            "containers"
        ][0]
        argv = [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
        for i, arg in enumerate(argv):
            if arg == STEPS_FLAG and i + 1 < len(argv):
                return int(argv[i + 1])
            if arg.startswith(STEPS_FLAG + "="):
                return int(arg.split("=", 1)[1])
        for var in container.get("env") or []:
            if var.get("name") == STEPS_ENV and "value" in var:
                return int(var["value"])
        return None

    def with_image(self, image: str) -> dict[str, Any]:
        """The object with every trainer container's image replaced (for a real cluster)."""
        obj: dict[str, Any] = yaml.safe_load(yaml.safe_dump(self.obj))
        for spec in obj["spec"]["replicaSpecs"].values():
            for container in spec["template"]["spec"]["containers"]:
                if repository(container["image"]).endswith(TRAINER_REPOSITORY):
                    container["image"] = image
        return obj


def load(directory: Path) -> list[DemoJob]:
    """The demo's jobs, in submission order."""
    jobs = []
    for name in MANIFESTS:
        path = directory / name
        obj = yaml.safe_load(path.read_text())
        if not isinstance(obj, dict) or obj.get("kind") != c.KIND:
            raise ValueError(f"{path} must hold exactly one {c.KIND}")
        jobs.append(DemoJob(path, obj))
    return jobs
