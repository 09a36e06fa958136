"""`elastrain-torchrun`: torchrun with three fixes elastic jobs need. Arguments are exactly
torchrun's, and PET_* environment defaults still apply.

1. Exit code. Plain torchrun, when the pod is deleted, forwards SIGTERM to its workers (which
   checkpoint and exit 143) but then dies of its own SignalException with exit code 1, which
   Elastrain's ExitCode policy (and Kubeflow's) reads as a permanent failure. This wrapper exits
   128 + signal instead, so a preempted pod is retried.
2. Re-rendezvous. torch (checked on 2.13) hands the workers of every rendezvous round the same
   shared TCPStore, while the process group's keys carry no round prefix: after a restart, a
   rank can read its peer's address from the previous round and fail with "connection refused".
   TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 makes rank 0 of each round host a fresh store instead.
3. Planned departures. When a pod leaves on purpose (a scale-down removes it, or it is evicted)
   its ranks get SIGTERM and the whole group agrees to stop at the next sync step after a
   checkpoint; the ranks that got no signal exit EXIT_REGROUP. Plain torchrun reads any non-zero
   exit as a failure and spends one of `--max-restarts` on it, so after max-restarts scale-downs
   the next one fails the pod. This agent re-rendezvouses on EXIT_REGROUP without spending one,
   as torch already does when nodes join: a membership change is not a failure. The leaving
   agent also takes itself out of the c10d rendezvous before it exits; otherwise the others'
   next round waits for its heartbeat to expire (3 x 5 s in torch 2.13) before it can form.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch.distributed.launcher.api as launcher_api
from torch.distributed.elastic.agent.server.api import RunResult, WorkerGroup, WorkerState
from torch.distributed.elastic.agent.server.local_elastic_agent import LocalElasticAgent
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.rendezvous import dynamic_rendezvous
from torch.distributed.run import main as torchrun_main

from elastrain_trainer.errors import EXIT_PREEMPTED, EXIT_REGROUP, REGROUP_EXIT_ENV

# What a local rank shows when the agent itself stopped it (torch closes the other local ranks
# with SIGTERM as soon as one exits): not a failure of its own.
_STOPPED_BY_AGENT = frozenset({-int(signal.SIGTERM), EXIT_PREEMPTED})
# How long a leaving agent tries to take itself out of the rendezvous before it gives up.
LEAVE_TIMEOUT_S = 5.0


def planned_departure(exit_codes: Sequence[int]) -> bool:
    """Whether a failed round's local exit codes say "a peer left on purpose": at least one rank
    exited EXIT_REGROUP and every other was stopped by the agent. Any other code is a failure
    that counts, as with plain torchrun."""
    codes = set(exit_codes)
    return EXIT_REGROUP in codes and codes <= {EXIT_REGROUP, *_STOPPED_BY_AGENT}


class ElastrainAgent(LocalElasticAgent):
    """torch's local agent, except that a planned departure re-rendezvouses for free."""

    regroups = 0

    def _monitor_workers(self, worker_group: WorkerGroup) -> RunResult:
        result = super()._monitor_workers(worker_group)
        if result.state == WorkerState.FAILED and planned_departure(
            [failure.exitcode for failure in result.failures.values()]
        ):
            # torch's loop takes one off before it restarts the group: give it back first.
            self._remaining_restarts += 1
            self.regroups += 1
            message = (
                f"elastrain-torchrun: a peer left on purpose; re-rendezvous number "
                f"{self.regroups} without spending a restart "
                f"({self._remaining_restarts - 1}/{worker_group.spec.max_restarts} left)"
            )
            print(message, file=sys.stderr, flush=True)
        return result

    def run(self, role: str = "default") -> Any:
        try:
            return super().run(role)
        except SignalException:
            # torch has stopped the workers (they checkpointed); now leave the rendezvous.
            leave_rendezvous(self._worker_group.spec.rdzv_handler)
            raise


def leave_rendezvous(handler: object) -> bool:
    """Take this node out of the participants of its c10d rendezvous, as torch does for a node
    whose heartbeat expired, only at once. Uses torch's private rendezvous ops (checked on
    2.13); if they are not there or fail, the others wait out the heartbeat as before."""
    try:
        if not isinstance(handler, dynamic_rendezvous.DynamicRendezvousHandler):
            return False
        handler._stop_heartbeats()
        deadline = time.monotonic() + LEAVE_TIMEOUT_S
        handler._op_executor.run(dynamic_rendezvous._RendezvousExitOp(), deadline)
    except Exception as exc:  # a private API and a store that may be going away: never fatal
        print(f"elastrain-torchrun: could not leave the rendezvous: {exc!r}", file=sys.stderr)
        return False
    print("elastrain-torchrun: left the rendezvous", file=sys.stderr, flush=True)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")
    # The workers inherit this: it tells the trainer that this agent understands EXIT_REGROUP.
    os.environ[REGROUP_EXIT_ENV] = str(EXIT_REGROUP)
    # torchrun builds its agent by this module-level name (checked on torch 2.13).
    launcher_api.LocalElasticAgent = ElastrainAgent  # type: ignore[misc]
    try:
        torchrun_main(list(sys.argv[1:] if argv is None else argv))
    except SignalException as exc:
        print(f"elastrain-torchrun: stopped by signal {int(exc.sigval)}", file=sys.stderr)
        return 128 + int(exc.sigval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
