"""The version is written once, as ``elastrain.__version__``; every other copy must equal it.

A release bumps ``operator/src/elastrain/__init__.py`` and then every copy this test names.
The operator wheel takes its version from the attribute itself (see also the wheel built by
``tests/test_layers.py``).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import elastrain
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VERSION = elastrain.__version__


def _pyproject(package: str) -> dict[str, object]:
    with (REPO / package / "pyproject.toml").open("rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def test_the_version_is_a_release_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION), VERSION


def test_the_operator_wheel_reads_the_version_from_the_package() -> None:
    with (REPO / "operator" / "pyproject.toml").open("rb") as f:
        config = tomllib.load(f)
    assert "version" not in config["project"]
    assert "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "elastrain.__version__"}


@pytest.mark.parametrize("package", ["sandbox", "devtools", "trainer-image"])
def test_the_other_packages_carry_the_same_version(package: str) -> None:
    assert _pyproject(package)["version"] == VERSION


def test_the_chart_version_and_app_version() -> None:
    chart = yaml.safe_load((REPO / "charts" / "elastrain" / "Chart.yaml").read_text())
    assert chart["version"] == VERSION
    assert chart["appVersion"] == VERSION


def test_the_chart_image_defaults_to_the_app_version() -> None:
    """An empty ``image.tag`` means the chart's appVersion; the comment says which it is."""
    path = REPO / "charts" / "elastrain" / "values.yaml"
    values = yaml.safe_load(path.read_text())
    assert values["image"]["tag"] in ("", VERSION)
    assert f"Defaults to the chart's appVersion ({VERSION})." in path.read_text()


def test_the_operator_image_label_and_build_command() -> None:
    dockerfile = (REPO / "operator" / "Dockerfile").read_text()
    labels = re.findall(r'org\.opencontainers\.image\.version="([^"]+)"', dockerfile)
    assert labels == [VERSION]
    tags = re.findall(r"docker build .*-t ghcr\.io/elastrain/operator:(\S+)", dockerfile)
    assert tags == [VERSION]


def test_the_changelog_names_the_version_as_its_latest_release() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", text, flags=re.MULTILINE)
    assert releases, "no released version in CHANGELOG.md"
    assert releases[0] == VERSION
    assert f"[{VERSION}]: " in text
