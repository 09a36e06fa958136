"""A bounded in-memory log of every API request, for tests and benchmarks.

Each entry: ``seq`` (monotonic), ``time``, ``method``, ``path``, ``verb`` (get/list/watch/
create/update/patch/delete/deletecollection or ``nonResource``), ``resource`` (``plural[.group]``
with ``/subresource``), ``namespace``, ``status`` and ``latency_ms`` (for a watch: the time to
establish it; a watch is recorded as soon as it is open, so counts taken mid-run include it).
Served at ``/sandbox/requests?since=SEQ``; counts never wrap even when old entries fall out of
the ring.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RequestRecord:
    seq: int
    time: float
    method: str
    path: str
    verb: str
    resource: str
    namespace: str
    status: int
    latency_ms: float


class RequestLog:
    def __init__(self, capacity: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._ring: deque[RequestRecord] = deque(maxlen=capacity)
        self._seq = 0
        self._counts: Counter[tuple[str, str]] = Counter()

    def record(
        self,
        method: str,
        path: str,
        verb: str,
        resource: str,
        namespace: str,
        status: int,
        started: float,
    ) -> None:
        with self._lock:
            self._seq += 1
            self._ring.append(
                RequestRecord(
                    self._seq,
                    time.time(),
                    method,
                    path,
                    verb,
                    resource,
                    namespace,
                    status,
                    round((time.monotonic() - started) * 1000, 3),
                )
            )
            self._counts[(verb, resource)] += 1

    @property
    def seq(self) -> int:
        with self._lock:
            return self._seq

    def since(self, seq: int = 0) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self._ring if r.seq > seq]

    def counts(self) -> dict[str, int]:
        """Requests per ``verb resource`` since start (never trimmed)."""
        with self._lock:
            return {f"{v} {r}".strip(): n for (v, r), n in sorted(self._counts.items())}

    def to_json(self, seq: int = 0) -> dict[str, Any]:
        items = self.since(seq)
        return {
            "next": items[-1].seq if items else seq,
            "items": [asdict(r) for r in items],
            "counts": self.counts(),
        }
