"""Leaving torch's dynamic RPC group without deadlocking a concurrent join.

torch serialises joins and graceful leaves with one token in the rendezvous store
(`_group_membership_management`). A leaver that finds the token taken waits for it with
`store.wait` on its RPC agent's own store connection, and that blocking call holds the
connection's lock. The join in progress meanwhile calls `_update_group_membership` on every
member, the leaver included, and that handler reads the joiner's address through the same
connection: it waits for the lock, the joiner waits for the handler, the leaver waits for the
joiner. Nobody moves until the store timeout, and the token is never released, so every later
join or leave of the job hangs as well (seen as `Token_for_worker0_r2_join` never released).

The way out is to wait for the token on a connection of our own: `take_leave_token` acquires it
under torch's own token name, so torch's `compare_set` in `rpc.shutdown` finds the token already
holding its name and proceeds without waiting, and the agent's connection stays free to answer
the joiner the whole time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch.distributed as dist
import torch.distributed.rpc as rpc

log = logging.getLogger(__name__)

# torch's names (torch/distributed/rpc/_utils.py and __init__.py). The first `init_rpc` of a
# process prefixes its store keys with "rpc_prefix_0"; `take_leave_token` checks through the
# agent's own store that it really holds torch's token and otherwise lets torch take it itself.
TOKEN_KEY = "RpcGroupManagementToken"  # noqa: S105 (torch's store key, not a secret)
STORE_PREFIX = "rpc_prefix_0"


def leave_token(name: str) -> str:
    return f"Token_for_{name}_leave"


class MembershipStore:
    """A second connection to the job's rendezvous store (hosted by ps-0), torch's key prefix."""

    def __init__(self, host: str, port: int, timeout: timedelta) -> None:
        self.raw = dist.TCPStore(host, port, is_master=False, timeout=timeout)
        self.store = dist.PrefixStore(STORE_PREFIX, self.raw)

    def acquire(self, token: str) -> None:
        """Wait until the membership token is ours, blocking only this connection."""
        while True:
            held = self.store.compare_set(TOKEN_KEY, "", token).decode()
            if held == token:
                return
            log.info("waiting for RPC group change %s to finish before leaving", held)
            self.store.wait([held])  # the holder sets its own token key once it is done

    def release(self, token: str) -> None:
        """Give the token back if it is still ours (torch failed or was never called)."""
        if self.store.compare_set(TOKEN_KEY, token, "").decode() == "":
            self.store.set(token, "Done")


@contextmanager
def leave_token_held(store: MembershipStore, name: str) -> Iterator[bool]:
    """Hold torch's leave token for `name` around a graceful `rpc.shutdown`.

    Yields whether torch will find the token as its own. If torch raises before releasing it,
    the token is released here so the rest of the job can still join and leave.
    """
    token = leave_token(name)
    store.acquire(token)
    try:
        agent_store: dist.Store | None = getattr(rpc.api._get_current_rpc_agent(), "store", None)
        ours = agent_store is not None and agent_store.get(TOKEN_KEY).decode() == token
        if not ours:
            log.warning("torch keeps its RPC membership token elsewhere; not pre-taking it")
            store.release(token)
        yield ours
    finally:
        try:
            store.release(token)
        except Exception as exc:  # ps-0's store may already be gone with its agent
            log.debug("membership token release after shutdown: %s", exc)
