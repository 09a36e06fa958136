"""Where the demo keeps its files: all of them under the repository's git-ignored ``.demo/``.

The demo promises to leave nothing behind outside that folder, so every path it writes (the
sandbox's state, logs, kubeconfig, pid file) is derived here and nowhere else.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

DEMO_DIR_NAME = ".demo"


class WorkspaceError(RuntimeError):
    """The repository checkout the demo needs (``crds/``, ``examples/``) cannot be found."""


@dataclass(frozen=True)
class Workspace:
    """The repository root, and the demo's own folder (``.demo/``, wiped at every start)."""

    root: Path
    demo_dir: Path

    @classmethod
    def find(cls, demo_dir: Path | None = None) -> Workspace:
        """The checkout this package runs from (``make install`` installs it editable).

        The demo applies ``crds/`` and job manifests from ``examples/``, so it needs the source
        tree rather than just the installed package; the current directory is tried second so a
        non-editable install still works when started from the checkout. ``demo_dir`` other
        than ``.demo/`` lets tests run beside a user's demo in the same checkout.
        """
        candidates = [*Path(__file__).resolve().parents, Path.cwd(), *Path.cwd().parents]
        for candidate in candidates:
            if (candidate / "crds").is_dir() and (candidate / "examples" / "demo").is_dir():
                return cls(candidate, (demo_dir or candidate / DEMO_DIR_NAME).absolute())
        raise WorkspaceError(
            "cannot find the Elastrain checkout (a folder with crds/ and examples/demo/); "
            "run the demo from the repository, e.g. `make demo`"
        )

    @property
    def kubeconfig(self) -> Path:
        """The kubeconfig the sandbox writes and every demo ``kubectl`` command uses."""
        return self.demo_dir / "kubeconfig"

    @property
    def sandbox_state(self) -> Path:
        """The sandbox's ``--state-dir`` (pod logs live under ``logs/`` in it)."""
        return self.demo_dir / "sandbox"

    @property
    def pod_logs(self) -> Path:
        """Container logs as the node agent writes them: ``<ns>/<pod>/<container>/<n>.log``."""
        return self.sandbox_state / "logs"

    def latest_pod_logs(self, namespace: str, pod_prefix: str) -> list[Path]:
        """The newest container log of each pod whose name starts with ``pod_prefix``."""
        found = []
        for container in sorted((self.pod_logs / namespace).glob(f"{pod_prefix}*/*")):
            runs = [p for p in container.glob("*.log") if p.stem.isdigit()]
            if runs:
                found.append(max(runs, key=lambda p: int(p.stem)))
        return found

    @property
    def sandbox_log(self) -> Path:
        """Stdout and stderr of the sandbox process."""
        return self.demo_dir / "sandbox.log"

    @property
    def operator_log(self) -> Path:
        """Stdout and stderr of the operator process."""
        return self.demo_dir / "operator.log"

    @property
    def pids_file(self) -> Path:
        """The processes a ``--keep`` run leaves behind, for ``--stop``."""
        return self.demo_dir / "pids.json"

    @property
    def crds(self) -> Path:
        """The generated CustomResourceDefinitions."""
        return self.root / "crds"

    @property
    def manifests(self) -> Path:
        """The demo's job manifests."""
        return self.root / "examples" / "demo"

    def relative(self, path: Path) -> str:
        """``path`` as the user should type it from the repository root."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def reset(self) -> None:
        """Remove a previous run's files so a run never reads stale state or logs.

        Only the demo's own paths go, never the whole folder: ``--demo-dir`` may name a
        folder that holds other things too.
        """
        shutil.rmtree(self.sandbox_state, ignore_errors=True)
        for path in (self.kubeconfig, self.sandbox_log, self.operator_log, self.pids_file):
            path.unlink(missing_ok=True)
        self.demo_dir.mkdir(parents=True, exist_ok=True)

    def kubectl(self) -> str:
        """The kubectl binary: ``make install``'s ``.tools/bin`` first, then ``PATH``."""
        bundled = self.root / ".tools" / "bin" / "kubectl"
        if os.access(bundled, os.X_OK):
            return str(bundled)
        found = shutil.which("kubectl")
        if found is None:
            raise WorkspaceError("kubectl not found: run `make install` (it puts it in .tools/bin)")
        return found
