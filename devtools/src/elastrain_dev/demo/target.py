"""Where the demo runs: the embedded sandbox (default), or a real cluster given ``IMAGE``.

A real cluster is used only when the user asks for it with ``IMAGE``: many users have
``KUBECONFIG`` pointing at a production cluster all day, and ``make demo`` must never submit
jobs there by accident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from elastrain_dev.demo.workspace import Workspace


class TargetError(ValueError):
    """The environment asks for a real cluster but does not say enough to reach it."""


@dataclass(frozen=True)
class Target:
    """The kubeconfig and namespace to use; ``image`` is set only for a real cluster."""

    kubeconfig: Path
    namespace: str
    image: str | None = None

    @property
    def sandbox(self) -> bool:
        """Whether the demo starts (and stops) its own sandbox."""
        return self.image is None

    @classmethod
    def from_env(cls, workspace: Workspace, env: Mapping[str, str], namespace: str) -> Target:
        """The sandbox, unless ``IMAGE`` names a trainer image for ``KUBECONFIG``'s cluster."""
        image = env.get("IMAGE", "").strip()
        if not image:
            return cls(workspace.kubeconfig, namespace)
        kubeconfig = env.get("KUBECONFIG", "").strip()
        if not kubeconfig:
            raise TargetError(
                "IMAGE is set, so the demo would run on a real cluster, but KUBECONFIG is not: "
                "set KUBECONFIG to the cluster's kubeconfig (or unset IMAGE to use the sandbox)"
            )
        return cls(Path(kubeconfig), namespace, image)
