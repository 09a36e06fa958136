"""A client-side token bucket for API requests.

The official Python client has no rate limiter at all (client-go defaults to QPS 5 / burst 10,
controller-runtime to 20/30). Without one, a burst of reconciles after an operator restart on a
large cluster sends thousands of creates at once and the API server's priority-and-fairness
answers with 429s. The bucket lets ``burst`` requests through at once and then ``qps`` per second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """``acquire()`` waits until a token is available; waiters are served in arrival order."""

    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"need qps > 0 and burst >= 1, got qps={qps} burst={burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        # One waiter at a time refills and sleeps, so a burst of callers queues fairly (FIFO).
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now

    async def acquire(self) -> None:
        """Take one token, waiting for the refill when the bucket is empty."""
        async with self._lock:
            self._refill()
            # The epsilon absorbs float rounding of elapsed * qps, which could otherwise ask
            # for a sleep too short to move the clock, forever.
            while self._tokens < 1.0 - 1e-9:
                await self._sleep((1.0 - self._tokens) / self.qps)
                self._refill()
            self._tokens = max(0.0, self._tokens - 1.0)
