"""pytest plugin: sandbox fixtures for tests (``pytest_plugins = ["sandbox_fixtures"]``).

* ``sandbox``: a fresh ``Sandbox`` per test (2 nodes, no GPUs, agent on).
* ``shared_sandbox``: one per module, for suites that only add objects in their own namespace.
* ``kubectl``: ``kubectl(*args, input=None, check=True, timeout=60) -> CompletedProcess`` running
  the real binary against the function-scoped sandbox, with its own discovery cache dir.
* ``Kubectl(sb)``: the same helper for any sandbox (use with ``shared_sandbox``);
  ``KubeconfigKubectl(path)`` for any cluster a kubeconfig names.
* ``wait_for(fn, timeout, what=...)``: poll with a deadline (never sleep to synchronise).
* ``ROOT_MARKS``: the marks of a test that runs pods' processes (root, or a skip).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from elastrain_sandbox.embedded import Sandbox

_REPO = Path(__file__).resolve().parent.parent  # tests/ is one level below the repo
T = TypeVar("T")

IS_ROOT = os.geteuid() == 0
# Tests that run real pods' processes: `root` for selection (CI runs as root), and a skip that
# says why everywhere else.
ROOT_MARKS = (
    pytest.mark.root,
    pytest.mark.skipif(not IS_ROOT, reason="needs root: network, UTS and mount namespaces"),
)


def wait_for(
    fn: Callable[[], T | None],
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``fn`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last value: {last!r})")


def kubectl_binary() -> str:
    """The pinned kubectl (``.tools/bin/kubectl``), else one on PATH."""
    local = _REPO / ".tools" / "bin" / "kubectl"
    if local.exists():
        return str(local)
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl is not installed (run `make install`)")
    return found


class KubeconfigKubectl:
    """Runs the real kubectl against the cluster one kubeconfig names (any cluster)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.binary = kubectl_binary()
        self.cache = tempfile.mkdtemp(prefix="kubectl-cache-")

    def argv(self, *args: str) -> list[str]:
        """The full command line: this kubeconfig and this helper's own discovery cache."""
        return [
            self.binary,
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            self.cache,
            *args,
        ]

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd = self.argv(*args)
        env = {**os.environ, "KUBECTL_INTERACTIVE_DELETE": "false"}
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed "
                f"({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """A long-running kubectl (``get -w``, ``logs -f``); the caller terminates it."""
        cmd = self.argv(*args)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def close(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)


class Kubectl(KubeconfigKubectl):
    """Runs the real kubectl against one sandbox (``.sb``)."""

    def __init__(self, sb: Sandbox) -> None:
        super().__init__(sb.kubeconfig_path)
        self.sb = sb


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    sb = Sandbox(nodes=2, state_dir=tmp_path / "sandbox")
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = Sandbox(nodes=2, state_dir=tmp_path_factory.mktemp("shared-sandbox"))
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def kubectl(sandbox: Sandbox) -> Iterator[Kubectl]:
    k = Kubectl(sandbox)
    try:
        yield k
    finally:
        k.close()
