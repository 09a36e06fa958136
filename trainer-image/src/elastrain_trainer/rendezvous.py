"""Which round of the job's c10d rendezvous this process group was formed in.

torchrun tells its workers `TORCHELASTIC_RESTART_COUNT`, but that is a count of one agent
(one pod) and of failures only (checked on torch 2.13): a re-rendezvous because a pod joined
or left does not count, and a pod that joins later starts at 0. The round number is the
job-wide figure: it lives in the rendezvous state that every agent shares through the c10d
store at `--rdzv-endpoint`, starts at 0 and grows by one each time the whole group is torn
down and formed again, whatever the reason. A worker process reads it there once at start: the
round cannot move on while this process's agent still takes part in it.

The state is torch's own (`C10dRendezvousBackend`, a pickled `_RendezvousState`); if reading it
fails (another backend, another torch, no endpoint in the environment), the caller's fallback
is used, and the trainer trains all the same.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping
from datetime import timedelta

import torch.distributed as dist

log = logging.getLogger(__name__)

READ_TIMEOUT = timedelta(seconds=10)
_DEFAULT_C10D_PORT = 29400  # torchrun's default for a c10d endpoint given without a port


def rendezvous_round(env: Mapping[str, str] | None = None, fallback: int = 0) -> int:
    """The c10d rendezvous round of this torchrun worker, or `fallback` when there is none.

    torchrun takes `--rdzv-endpoint`/`--rdzv-backend` from `PET_*` (which the operator sets)
    and passes its environment on to the workers; `TORCHELASTIC_RUN_ID` is the rendezvous id.
    """
    environ = os.environ if env is None else env
    run_id = environ.get("TORCHELASTIC_RUN_ID", "")
    endpoint = environ.get("PET_RDZV_ENDPOINT", "")
    if not run_id or not endpoint or environ.get("PET_RDZV_BACKEND", "static") != "c10d":
        return fallback
    try:
        return _read_round(endpoint, run_id)
    except Exception as exc:  # never cost a run a metric: any failure means "unknown"
        log.warning("rendezvous round not readable at %s (%s); using %d", endpoint, exc, fallback)
        return fallback


def _read_round(endpoint: str, run_id: str) -> int:
    # Imported here: torch.distributed.elastic is only needed (and only loaded) under torchrun.
    from torch.distributed.elastic.rendezvous.c10d_rendezvous_backend import (
        C10dRendezvousBackend,
    )
    from torch.distributed.elastic.rendezvous.utils import parse_rendezvous_endpoint

    host, port = parse_rendezvous_endpoint(endpoint, _DEFAULT_C10D_PORT)
    store = dist.TCPStore(host, port, is_master=False, timeout=READ_TIMEOUT)
    got = C10dRendezvousBackend(store, run_id).get_state()
    if got is None:
        raise LookupError("no rendezvous state in the store")
    # The state was pickled by this job's own torchrun agents (the store is the job's own).
    state = pickle.loads(got[0])  # noqa: S301
    return int(state.round)
