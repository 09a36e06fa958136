"""Running host tools (``ip``) with errors that say which command failed and why.

The agent drives the kernel through ``ip`` rather than netlink bindings: it is what the
checked recipe in the sandbox notes uses, it needs no extra dependency, and a failing command's
stderr is the most useful error message there is.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


class HostCommandError(RuntimeError):
    """A host command exited non-zero; carries the command line and its stderr."""


def run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run ``argv`` to completion and return its stdout (text)."""
    proc = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=60
    )
    if check and proc.returncode != 0:
        raise HostCommandError(
            f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout}"
        )
    return proc.stdout
