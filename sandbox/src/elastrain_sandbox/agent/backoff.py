"""The kubelet's container restart back-off: 10 s doubling to 5 min, reset after 10 min up.

Configurable so tests use a base of a fraction of a second and stay fast while exercising
the same doubling, cap and reset rules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """The three knobs of the kubelet's crash-loop back-off."""

    base: float = 10.0
    cap: float = 300.0
    reset_after: float = 600.0


@dataclass
class Backoff:
    """Per-container state, as the kubelet keeps it per pod and container.

    The first restart is immediate; each further one waits the current delay, which then
    doubles up to the cap. A container that stayed up ``reset_after`` starts over.
    """

    policy: BackoffPolicy
    current: float | None = None

    def next_delay(self, ran_for: float) -> float:
        """Delay before restarting a container that ran ``ran_for`` seconds, and advance."""
        if self.current is None or ran_for >= self.policy.reset_after:
            self.current = self.policy.base
            return 0.0
        delay = self.current
        self.current = min(self.current * 2, self.policy.cap)
        return delay
