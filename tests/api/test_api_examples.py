"""examples/: every document is a valid Kubernetes object, every PVC a job mounts is in the same
file, and every trainer command line parses with the trainer's own flag parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from api_cases import ALL_EXAMPLES, EXAMPLES, REPO
from elastrain.api import constants as c
from elastrain_trainer.config import build_parser

Obj = dict[str, Any]
TRAINER_IMAGE = "ghcr.io/elastrain/trainer:0.1.0"
EXAMPLES_DIR = REPO / "examples"


def _docs(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _containers(job: Obj) -> list[Obj]:
    return [
        container
        for role in job["spec"]["replicaSpecs"].values()
        for container in role["template"]["spec"]["containers"]
    ]


def test_the_three_examples_exist() -> None:
    assert {p.name for p in EXAMPLES} >= {"ddp.yaml", "elastic-ddp.yaml", "ps.yaml"}


@pytest.mark.parametrize(
    "path", ALL_EXAMPLES, ids=[str(p.relative_to(EXAMPLES_DIR)) for p in ALL_EXAMPLES]
)
def test_example_documents(path: Path) -> None:
    docs = _docs(path)
    jobs = [d for d in docs if d["kind"] == c.KIND]
    assert len(jobs) == 1
    version = kubernetes_validate.latest_version()
    for doc in docs:
        if doc["kind"] != c.KIND:
            kubernetes_validate.validate(doc, version, strict=True)
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    job = jobs[0]
    for role in job["spec"]["replicaSpecs"].values():
        for volume in role["template"]["spec"].get("volumes", []):
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            assert claim is None or claim in claims, f"{claim} is not defined in {path.name}"
    for container in _containers(job):
        assert container["image"] == TRAINER_IMAGE


@pytest.mark.parametrize(
    "path", ALL_EXAMPLES, ids=[str(p.relative_to(EXAMPLES_DIR)) for p in ALL_EXAMPLES]
)
def test_trainer_command_lines_parse(path: Path) -> None:
    job = next(d for d in _docs(path) if d["kind"] == c.KIND)
    for container in _containers(job):
        command = container["command"]
        if command[0] in ("torchrun", "elastrain-torchrun"):
            assert command[1:] == ["--no-python", "elastrain-train"]
        else:
            assert command == ["elastrain-train"]
        args = build_parser().parse_args(container["args"])
        assert args.mode in {"ddp", "ps"}
        assert args.model == "mlp"
        assert args.steps > 0
