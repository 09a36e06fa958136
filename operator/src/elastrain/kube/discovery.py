"""Discovery: whether the API server serves a kind, and a cached answer for the reconcile.

The PodGroup CRD (scheduler-plugins) may be installed, removed or installed later; gang jobs
wait for it instead of failing. Asking discovery (``GET /apis/<group>/<version>``, readable by
every authenticated user) needs no RBAC on CRDs; the answer is cached so that a reconcile of
every job does not cost a request each.
"""

from __future__ import annotations

import asyncio
import logging
import time

from elastrain.api.kinds import Kind
from elastrain.kube import errors
from elastrain.kube.client import Kube

log = logging.getLogger(__name__)


async def serves(kube: Kube, kind: Kind) -> bool:
    """Whether discovery lists ``kind``'s plural under its group/version."""
    try:
        listing = await kube.request("GET", kind.api_prefix)
    except errors.NotFound:
        return False
    return any(r.get("name") == kind.plural for r in (listing or {}).get("resources", []))


class CrdProbe:
    """Caches whether ``kind`` is served, re-asked every ``ttl`` seconds or at once after
    :meth:`invalidate` (a change of its CRD was seen)."""

    def __init__(self, kube: Kube, kind: Kind, ttl: float = 60.0) -> None:
        self.kind = kind
        self._kube = kube
        self._ttl = ttl
        self._value = False
        self._checked = -float("inf")
        self._lock = asyncio.Lock()

    async def served(self) -> bool:
        """The cached answer, refreshed when older than ``ttl``."""
        async with self._lock:
            if time.monotonic() - self._checked >= self._ttl:
                try:
                    self._value = await serves(self._kube, self.kind)
                except errors.ApiError as exc:  # keep the last answer; discovery is best effort
                    log.warning(
                        "%s discovery failed, keeping %s: %s", self.kind.kind, self._value, exc
                    )
                self._checked = time.monotonic()
            return self._value

    def invalidate(self) -> None:
        """Ask discovery again on the next :meth:`served`."""
        self._checked = -float("inf")

    async def wait_until_served(self, timeout: float, interval: float = 1.0) -> bool:
        """Ask again every ``interval`` seconds until ``kind`` is served or ``timeout`` passes.

        kube-apiserver lists a new CRD's group in discovery a moment after the CRD appears,
        even after it is Established, and no further CRD event announces that moment."""
        deadline = time.monotonic() + timeout
        while True:
            self.invalidate()
            if await self.served():
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval)
