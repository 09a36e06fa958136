"""Ports handed to processes before they bind them: never twice, never from the ephemeral range."""

from __future__ import annotations

import socket

from elastrain_sandbox import ports


def test_ports_are_unique_bindable_and_below_the_ephemeral_range() -> None:
    drawn = [ports.free_port() for _ in range(200)]
    assert len(set(drawn)) == len(drawn)
    assert all(ports.LOWEST <= p < ports._ephemeral_low() for p in drawn)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", drawn[-1]))


def test_a_span_of_ports_is_free_as_a_whole_and_not_reused() -> None:
    first = ports.free_port(3)
    spans = {first, first + 1, first + 2}
    for _ in range(50):
        port = ports.free_port()
        assert port not in spans
