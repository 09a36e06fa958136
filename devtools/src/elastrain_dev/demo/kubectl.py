"""The demo's ``kubectl``: the commands a user would type, run for real and shown as typed.

The demo applies manifests and reads logs with kubectl rather than the Python client so that
what it does is exactly what it then tells the user to run, against the same kubeconfig.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message is the command line and kubectl's own stderr."""


@dataclass(frozen=True)
class Kubectl:
    """kubectl bound to one kubeconfig and namespace."""

    binary: str
    kubeconfig: str
    namespace: str
    # How the binary and kubeconfig are spelled for the user (paths relative to the checkout).
    shown_binary: str
    shown_kubeconfig: str

    def argv(self, *args: str) -> list[str]:
        """The full command line for ``kubectl <args>``."""
        return [self.binary, "--kubeconfig", self.kubeconfig, "--namespace", self.namespace, *args]

    def run(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        """Run ``kubectl <args>`` and return its stdout; raise ``KubectlError`` on failure."""
        try:
            proc = subprocess.run(
                self.argv(*args),
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise KubectlError(f"`{self.shown(*args)}` timed out after {timeout:.0f}s") from exc
        if proc.returncode != 0:
            message = proc.stderr.strip() or proc.stdout.strip()
            raise KubectlError(f"`{self.shown(*args)}` exited {proc.returncode}: {message}")
        return proc.stdout

    def shown(self, *args: str) -> str:
        """``kubectl <args>`` as a user types it from the checkout's root."""
        parts = [self.shown_binary, "--kubeconfig", self.shown_kubeconfig]
        if self.namespace != "default":
            parts += ["--namespace", self.namespace]
        return shlex.join([*parts, *args])
