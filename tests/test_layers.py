"""The layer contracts (``.importlinter``) hold, really catch a violation, and the operator ships
alone: importing its pure layers loads nothing of the sandbox, and its wheel holds only
``elastrain`` and depends only on aiohttp, kopf, kubernetes and prometheus-client.

The linter runs on the installed (editable) packages; the violation is written into a copy of
``operator/src/elastrain`` placed first on ``PYTHONPATH``, never into the real tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import elastrain
import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / ".importlinter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
OPERATOR_SRC = REPO / "operator" / "src" / "elastrain"
_COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")


def _lint_imports(*args: str, cwd: Path, pythonpath: Path | None = None) -> tuple[int, str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(pythonpath), *filter(None, [env.get("PYTHONPATH")])]
        )
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # The report wraps long contract names at 80 columns; compare with whitespace collapsed.
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def test_the_layer_contracts_hold() -> None:
    code, out = _lint_imports(str(CONFIG), cwd=REPO)
    assert code == 0, out
    assert "0 broken" in out, out


# (file written into the copied tree, its import, the contract id, the contract's name)
VIOLATIONS = [
    pytest.param(
        "planner/_layer_probe.py",
        "import kopf",
        "pure-core",
        "api and planner are pure",
        "elastrain.planner._layer_probe -> kopf",
        id="planner-imports-kopf",
    ),
    pytest.param(
        "api/_layer_probe.py",
        "import elastrain.planner",
        "api-bottom",
        "api is the bottom layer",
        "elastrain.api._layer_probe -> elastrain.planner",
        id="api-imports-planner",
    ),
    pytest.param(
        "kube/_layer_probe.py",
        "from elastrain import controller",
        "kube-below-controller",
        "kube imports no controller or planner",
        "elastrain.kube._layer_probe -> elastrain.controller",
        id="kube-imports-controller",
    ),
    pytest.param(
        "_layer_probe.py",
        "import elastrain_sandbox",
        "operator-alone",
        "the operator imports no sandbox",
        "elastrain._layer_probe -> elastrain_sandbox",
        id="operator-imports-sandbox",
    ),
]


@pytest.mark.parametrize(("where", "line", "contract", "name", "chain"), VIOLATIONS)
def test_the_linter_catches_a_violation(
    tmp_path: Path, where: str, line: str, contract: str, name: str, chain: str
) -> None:
    copy = tmp_path / "src" / "elastrain"
    shutil.copytree(OPERATOR_SRC, copy, ignore=_COPY_IGNORE)
    config = tmp_path / "importlinter.ini"
    shutil.copyfile(CONFIG, config)
    args = (str(config), "--contract", contract)

    # The untouched copy keeps the contract, so the failure below is the probe's doing.
    code, out = _lint_imports(*args, cwd=tmp_path, pythonpath=tmp_path / "src")
    assert code == 0, out

    (copy / where).write_text(f'"""A deliberate layer violation."""\n\n{line}\n')
    code, out = _lint_imports(*args, cwd=tmp_path, pythonpath=tmp_path / "src")
    assert code != 0, out
    assert name in out, out
    assert "BROKEN" in out, out
    assert chain in out, out
    assert not (OPERATOR_SRC / where).exists()


# Modules that must never be loaded by the operator's pure layers (the sandbox's server stack,
# its CEL engine and YAML, the dev tools, the trainer, and the controller's libraries).
FORBIDDEN_AT_RUNTIME = (
    "elastrain_sandbox",
    "elastrain_dev",
    "elastrain_trainer",
    "aiohttp",
    "celpy",
    "yaml",
    "jsonschema",
    "kubernetes_validate",
    "kopf",
    "kubernetes",
    "torch",
)

_PROBE = """
import importlib, json, pkgutil, sys
import elastrain, elastrain.api, elastrain.planner
for package in (elastrain.api, elastrain.planner):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def test_the_pure_layers_load_no_sandbox_or_runtime_modules() -> None:
    """Every module of ``elastrain.api`` and ``elastrain.planner``, imported in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "elastrain.api.parse" in loaded
    assert "elastrain.planner" in loaded
    leaked = [m for m in loaded if m.split(".")[0] in FORBIDDEN_AT_RUNTIME]
    assert leaked == []


@pytest.fixture(scope="module")
def operator_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator wheel, built offline from a copy of ``operator/`` (no build outputs land
    in the real tree)."""
    root = tmp_path_factory.mktemp("wheel")
    project = root / "operator"
    shutil.copytree(REPO / "operator", project, ignore=_COPY_IGNORE)
    out = root / "dist"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(out),
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("elastrain-*.whl")
    return wheel


def test_the_operator_wheel_holds_only_the_operator(operator_wheel: Path) -> None:
    with zipfile.ZipFile(operator_wheel) as wheel:
        names = wheel.namelist()
    dist_info = f"elastrain-{elastrain.__version__}.dist-info/"
    assert "elastrain/__init__.py" in names
    assert "elastrain/py.typed" in names
    assert "elastrain/api/parse.py" in names
    strays = [n for n in names if not n.startswith(("elastrain/", dist_info))]
    assert strays == []


def test_the_operator_wheel_depends_only_on_what_the_operator_imports(
    operator_wheel: Path,
) -> None:
    with zipfile.ZipFile(operator_wheel) as wheel:
        metadata_path = f"elastrain-{elastrain.__version__}.dist-info/METADATA"
        metadata = HeaderParser().parsestr(wheel.read(metadata_path).decode())
    assert metadata["Name"] == "elastrain"
    assert metadata["Version"] == elastrain.__version__
    requires = metadata.get_all("Requires-Dist") or []
    names = sorted(_requirement_name(r) for r in requires)
    assert names == ["aiohttp", "kopf", "kubernetes", "prometheus-client"]


def _requirement_name(requirement: str) -> str:
    """``kopf>=1.44.6`` -> ``kopf`` (PEP 508: the name ends at the first non-name character)."""
    name = requirement.strip()
    for i, ch in enumerate(name):
        if not (ch.isalnum() or ch in "-_."):
            name = name[:i]
            break
    return name.lower().replace("_", "-")
