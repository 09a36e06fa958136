"""`elastrain-torchrun`: torchrun with two fixes elastic jobs need. Arguments are exactly
torchrun's, and PET_* environment defaults still apply.

1. Exit code. Plain torchrun, when the pod is deleted, forwards SIGTERM to its workers (which
   checkpoint and exit 143) but then dies of its own SignalException with exit code 1, which
   Elastrain's ExitCode policy (and Kubeflow's) reads as a permanent failure. This wrapper exits
   128 + signal instead, so a preempted pod is retried.
2. Re-rendezvous. torch (checked on 2.13) hands the workers of every rendezvous round the same
   shared TCPStore, while the process group's keys carry no round prefix: after a restart, a
   rank can read its peer's address from the previous round and fail with "connection refused".
   TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 makes rank 0 of each round host a fresh store instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.run import main as torchrun_main


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")
    try:
        torchrun_main(list(sys.argv[1:] if argv is None else argv))
    except SignalException as exc:
        print(f"elastrain-torchrun: stopped by signal {int(exc.sigval)}", file=sys.stderr)
        return 128 + int(exc.sigval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
