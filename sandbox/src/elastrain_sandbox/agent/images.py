"""Mapping container images to what runs them on this host (there is no image store).

The trainer image (any repository ending in ``elastrain/trainer``) runs with the project's own
Python environment: its ``bin`` goes first on PATH so ``torchrun``, ``python`` and
``elastrain-train`` resolve as inside the real image. So does the operator image
(``elastrain/operator``, the chart's), whose entrypoint is ``python -m elastrain``. Every
other image runs its command on the host's userland (``sh -c``, ``python3``), which is what
busybox- or python-based test pods need.
An image without a known entrypoint and without ``command`` cannot start, as a kubelet could
not either without the image's config.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ImageRuntime:
    """How to run one image: extra PATH entries first, extra env, the default entrypoint."""

    path_prefix: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    entrypoint: tuple[str, ...] = ()
    # Host directories that stand for the image's own filesystem (the venv, the sources of its
    # editable installs): a pod's volume must not hide them, as it cannot hide an image's files
    # outside the volume's path (an emptyDir on /tmp, with the checkout under /tmp).
    files: tuple[str, ...] = ()

    def path(self) -> str:
        """PATH for the container: the image's own entries before the host's."""
        return ":".join((*self.path_prefix, HOST_PATH))


def repository(image: str) -> str:
    """``registry/org/name:tag@digest`` -> ``registry/org/name``."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def project_venv() -> Path:
    """The venv this agent runs from: the directory holding the interpreter's ``bin``."""
    return Path(sys.prefix)


def _package_roots(*packages: str) -> tuple[str, ...]:
    """The directories the project's packages are imported from (their editable sources),
    found without importing them."""
    roots: list[str] = []
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            roots.append(str(Path(spec.origin).resolve().parent.parent))
    return tuple(dict.fromkeys(roots))


def trainer_runtime(venv: Path | None = None) -> ImageRuntime:
    """The trainer image: the project's venv first on PATH, ``elastrain-train`` by default."""
    root = venv or project_venv()
    return ImageRuntime(
        path_prefix=(str(root / "bin"),),
        env=(("VIRTUAL_ENV", str(root)),),
        entrypoint=("elastrain-train",),
        files=(str(root), *_package_roots("elastrain_trainer")),
    )


def operator_runtime(venv: Path | None = None) -> ImageRuntime:
    """The operator image (operator/Dockerfile): the project's venv first on PATH, the
    image's ``ENTRYPOINT ["python", "-m", "elastrain"]`` and its ``PYTHONUNBUFFERED``."""
    root = venv or project_venv()
    return ImageRuntime(
        path_prefix=(str(root / "bin"),),
        env=(("VIRTUAL_ENV", str(root)), ("PYTHONUNBUFFERED", "1")),
        entrypoint=("python", "-m", "elastrain"),
        files=(str(root), *_package_roots("elastrain")),
    )


@dataclass
class ImageMap:
    """Repository-suffix rules, checked in order; the first match wins."""

    rules: list[tuple[str, ImageRuntime]] = field(default_factory=list)

    @classmethod
    def default(cls) -> ImageMap:
        """Trainer and operator images to the venv; busybox/python/ubuntu-like images to the
        host."""
        python = ImageRuntime(entrypoint=("python3",))
        shell = ImageRuntime(entrypoint=("sh",))
        rules = [("elastrain/trainer", trainer_runtime())]
        rules += [("elastrain/operator", operator_runtime())]
        rules += [(name, python) for name in ("python", "pytorch/pytorch")]
        rules += [(name, shell) for name in ("busybox", "alpine", "ubuntu", "debian")]
        return cls(rules)

    def runtime(self, image: str) -> ImageRuntime:
        """The runtime for ``image``; unknown images get the host userland, no entrypoint."""
        repo = repository(image)
        for suffix, runtime in self.rules:
            if repo == suffix or repo.endswith("/" + suffix):
                return runtime
        return ImageRuntime()


def base_env(runtime: ImageRuntime, hostname: str) -> dict[str, str]:
    """What a container's environment holds before the spec's ``env``: like an image's ENV."""
    env = {"PATH": runtime.path(), "HOSTNAME": hostname, "HOME": "/root"}
    if os.geteuid() != 0:
        env["HOME"] = os.environ.get("HOME", "/tmp")
    env.update(dict(runtime.env))
    return env
