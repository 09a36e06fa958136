"""Where the sandbox may listen: loopback, or the private bridge its own pods sit on.

The embedded API server accepts one well-known token and the node agent runs whatever a pod
spec says, so a listener on a public interface would hand the machine to anyone who can reach it.
Every socket the sandbox serves on passes :func:`require_private` first; ``0.0.0.0``, ``::``
and any routable address are refused with a :class:`BindRefused` that says why, before the
socket exists.

The bridge range is the node agent's subnet pool (``10.213.0.0/16``, cut into one /22 per
sandbox): addresses on it are reachable only from the host and the sandbox's pods.
"""

from __future__ import annotations

import ipaddress

# The node agent's pod subnets (elastrain_sandbox.agent.network.SUBNET_POOL): the host's end of
# a sandbox bridge is the only non-loopback address the sandbox listens on.
BRIDGE_POOL = ipaddress.IPv4Network("10.213.0.0/16")


class BindRefused(ValueError):
    """A sandbox listener was asked for an address other machines may reach."""


def is_private(host: str) -> bool:
    """True for a loopback address or ``localhost``, or an address of the sandbox's bridges."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere
    return address.is_loopback or (address.version == 4 and address in BRIDGE_POOL)


def require_private(host: str, what: str) -> str:
    """``host`` unchanged when :func:`is_private`; else :class:`BindRefused`."""
    if not is_private(host):
        raise BindRefused(
            f"{what}: refusing to listen on {host!r}; the sandbox is a development cluster "
            "for this machine alone and binds loopback (127.0.0.0/8, ::1) or its own pod bridge "
            f"({BRIDGE_POOL}) only"
        )
    return host
