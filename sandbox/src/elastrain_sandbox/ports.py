"""Ports for processes that are told their port before they bind it (operators, ps stores).

Binding port 0 and closing the socket yields a port from the kernel's ephemeral range, and
any outgoing connection on the machine may take that very port as its local end before our
process binds it; two such draws in one process may also return the same port. Both happened
in CI (`Address already in use` on an operator's metrics port). So ports come from below the
ephemeral range, where the kernel never picks local ends, and none is handed out twice by one
process. Listeners that can bind port 0 themselves should keep doing that instead.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

LOWEST = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_lock = threading.Lock()
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(count: int = 1) -> int:
    """A port p with p..p+count-1 free now, below the ephemeral range, new to this process."""
    high = max(LOWEST + 1000, _ephemeral_low()) - count
    with _lock:
        for _ in range(500):
            port = random.randrange(LOWEST, high)
            span = range(port, port + count)
            if _handed_out.isdisjoint(span) and all(_bindable(p) for p in span):
                _handed_out.update(span)
                return port
    raise RuntimeError(f"no {count} free consecutive port(s) in {LOWEST}..{high}")
