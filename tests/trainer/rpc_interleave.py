"""Run `elastrain-train` with torch's RPC membership steps instrumented to force one interleaving.

The race this reproduces (see `elastrain_trainer.ps.membership`): a worker leaves the dynamic RPC
group while another worker's join holds torch's membership token. It is rare by chance, so the
test pins the order with marker files in ELASTRAIN_TEST_MARKERS:

- joiner (ELASTRAIN_TEST_INTERLEAVE=joiner): once inside its join's critical section (token
  held), writes `join-holding`, then waits for `leave-waiting` before it tells the members.
- leaver (ELASTRAIN_TEST_INTERLEAVE=leaver): before it first asks for a leave token, waits for
  `join-holding`; writes `leave-waiting` right before it blocks on the joiner's token.

Only torch's functions are wrapped; the trainer's own code runs unchanged.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch.distributed as dist
import torch.distributed.rpc.backend_registry as backend_registry
from trainer_helpers import poll  # this script's folder is on sys.path

MARKERS = Path(os.environ["ELASTRAIN_TEST_MARKERS"])
DEADLINE_S = 120.0


def _await(name: str) -> None:
    poll((MARKERS / name).exists, DEADLINE_S, f"the {name} marker", interval=0.05)


def _mark(name: str) -> None:
    (MARKERS / name).write_text(str(os.getpid()))


def _as_joiner() -> None:
    original = backend_registry._set_devices_and_reverse_device_map

    def join_then_pause(agent: Any) -> None:
        _mark("join-holding")
        _await("leave-waiting")
        original(agent)

    backend_registry._set_devices_and_reverse_device_map = join_then_pause


def _as_leaver() -> None:
    compare_set, wait = dist.Store.compare_set, dist.Store.wait

    def compare_set_after_join(self: Any, key: str, expected: Any, desired: Any) -> Any:
        if str(desired).endswith("_leave"):
            _await("join-holding")
        return compare_set(self, key, expected, desired)

    def wait_marked(self: Any, keys: Any, *args: Any) -> Any:
        if any(str(k).endswith("_join") for k in keys):
            _mark("leave-waiting")
        return wait(self, keys, *args)

    dist.Store.compare_set = compare_set_after_join  # type: ignore[method-assign,assignment]
    dist.Store.wait = wait_marked  # type: ignore[method-assign,assignment]


if __name__ == "__main__":
    {"joiner": _as_joiner, "leaver": _as_leaver}[os.environ["ELASTRAIN_TEST_INTERLEAVE"]]()
    from elastrain_trainer.cli import main

    sys.exit(main(sys.argv[1:]))
