"""`elastrain-torchrun`: torchrun with the exit code the operator's restart policy expects.

Plain torchrun, when the pod is deleted, forwards SIGTERM to its workers (which checkpoint and
exit 143) but then dies of its own SignalException with exit code 1, which Elastrain's ExitCode
policy (and Kubeflow's) reads as a permanent failure. This wrapper runs torchrun's own `main` in
process and exits 128 + signal instead, so a preempted pod is retried. Arguments are exactly
torchrun's, and PET_* environment defaults still apply.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.run import main as torchrun_main


def main(argv: Sequence[str] | None = None) -> int:
    try:
        torchrun_main(list(sys.argv[1:] if argv is None else argv))
    except SignalException as exc:
        print(f"elastrain-torchrun: stopped by signal {int(exc.sigval)}", file=sys.stderr)
        return 128 + int(exc.sigval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
