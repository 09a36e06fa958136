"""Atomic, rotating checkpoints: `ckpt-<step>.pt` files in one directory.

A pod can be killed at any instant, so a checkpoint is written to a temporary file in the same
directory, fsynced, renamed over its final name and the directory fsynced: a reader sees either
the whole new file or none of it. Only the newest `keep` files stay. A file that fails to load
(for example written by a node that lost power before the rename reached disk) is skipped in
favour of the previous one.
"""

from __future__ import annotations

import logging
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt-(\d{10})\.pt$")


def atomic_save(payload: dict[str, Any], path: Path) -> None:
    """torch.save to `path` via temp file + fsync + rename + directory fsync."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True)
class Loaded:
    """A checkpoint read back: its step and the dict that was saved."""

    step: int
    payload: dict[str, Any]


class CheckpointDir:
    """The checkpoints of one writer (a DDP job's rank 0, or one ps shard)."""

    def __init__(self, directory: str | os.PathLike[str], keep: int) -> None:
        self.path = Path(directory)
        self.keep = keep

    def steps(self) -> list[int]:
        """Steps that have a checkpoint, oldest first."""
        if not self.path.is_dir():
            return []
        found = (_NAME.match(p.name) for p in self.path.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def file_for(self, step: int) -> Path:
        return self.path / f"ckpt-{step:010d}.pt"

    def save(self, step: int, payload: dict[str, Any]) -> Path:
        """Write the checkpoint of `step`, then drop all but the newest `keep`."""
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.file_for(step)
        atomic_save({"format_version": FORMAT_VERSION, "step": step, **payload}, target)
        for old in self.steps()[: -self.keep]:
            self.file_for(old).unlink(missing_ok=True)
        return target

    def load_latest(self) -> Loaded | None:
        """The newest readable checkpoint, or None when there is none."""
        for step in reversed(self.steps()):
            path = self.file_for(step)
            try:
                payload = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as exc:  # a torn or foreign file: fall back to the previous one
                log.warning("skipping unreadable checkpoint %s: %s", path, exc)
                continue
            if payload.get("format_version") != FORMAT_VERSION:
                log.warning("skipping %s: format %s", path, payload.get("format_version"))
                continue
            return Loaded(step=step, payload=payload)
        return None


def rng_state() -> dict[str, Any]:
    """The RNG streams a resumed run must continue (dropout masks, user-side randomness)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
