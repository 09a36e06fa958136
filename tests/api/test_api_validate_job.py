"""``python -m elastrain_dev.validate_job``: offline checks of TrainingJob manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_cases import EXAMPLES, REPO
from elastrain_dev import validate_job


def test_examples_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert validate_job.main([str(p) for p in EXAMPLES]) == 0
    assert capsys.readouterr().out == ""


def test_bad_job_reports_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = (REPO / "examples" / "ddp.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        manifest.replace("replicas: 2", "replicas: -2")
        .replace("name: ddp  ", "name: Bad.Name ")
        .replace("  replicaSpecs:", "  elasticPolicyy: {}\n  replicaSpecs:")
    )
    assert validate_job.main([str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert all(line.startswith(f"{bad}[1] Bad.Name: ") for line in lines)
    assert len(lines) == len(set(lines))
    fields = {line.split(": ")[1] for line in lines}
    assert sorted(fields) == [
        "metadata.name",
        "spec.elasticPolicyy",
        "spec.replicaSpecs.worker.replicas",
    ]


def test_unreadable_inputs_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [unclosed\n")
    other = tmp_path / "other.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert validate_job.main([str(other)]) == 0
    assert validate_job.main([str(broken), str(tmp_path / "missing.yaml")]) == 1
    out = capsys.readouterr().out
    assert "not valid YAML" in out and "No such file or directory" in out


def test_wrong_api_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("apiVersion: kubeflow.org/v1\nkind: TrainingJob\nmetadata: {name: x}\n")
    assert validate_job.main([str(path)]) == 1
    assert "apiVersion must be elastrain.dev/v1alpha1" in capsys.readouterr().out
