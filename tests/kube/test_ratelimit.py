"""The token bucket lets a burst through, then paces requests at qps (simulated clock)."""

from __future__ import annotations

import asyncio

import pytest
from elastrain.kube.ratelimit import TokenBucket


class FakeClock:
    """Time that moves only when the bucket sleeps, so the test measures waits, not wall time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_burst_then_qps() -> None:
    clock = FakeClock()

    async def scenario() -> None:
        bucket = TokenBucket(10, 5, clock=clock, sleep=clock.sleep)
        for _ in range(5):
            await bucket.acquire()
        assert clock.now == 0.0  # the burst costs no waiting
        for _ in range(10):
            await bucket.acquire()
        # ten more tokens at 10/s take one simulated second
        assert clock.now == pytest.approx(1.0)

    asyncio.run(scenario())


def test_idle_time_refills_up_to_burst_only() -> None:
    clock = FakeClock()

    async def scenario() -> None:
        bucket = TokenBucket(2, 3, clock=clock, sleep=clock.sleep)
        clock.now = 100.0  # a long idle period
        for _ in range(3):
            await bucket.acquire()
        assert clock.now == 100.0
        await bucket.acquire()
        assert clock.now == pytest.approx(100.5)

    asyncio.run(scenario())


def test_concurrent_waiters_are_all_served() -> None:
    clock = FakeClock()

    async def scenario() -> None:
        bucket = TokenBucket(4, 1, clock=clock, sleep=clock.sleep)
        await asyncio.gather(*(bucket.acquire() for _ in range(9)))
        assert clock.now == pytest.approx(2.0)

    asyncio.run(scenario())


@pytest.mark.parametrize(("qps", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_rejects_nonsense_limits(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match=r"need qps > 0 and burst >= 1"):
        TokenBucket(qps, burst)
