"""The sandbox refuses non-loopback binds: each listener is checked before its socket exists,
and a running sandbox (API server, node agent, API relay) listens on nothing else."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
from pathlib import Path

import pytest
from elastrain_sandbox.agent.apiaccess import ApiForwarder
from elastrain_sandbox.agent.kubeletapi import KubeletApi
from elastrain_sandbox.binds import BindRefused, is_private
from elastrain_sandbox.embedded import Sandbox
from elastrain_sandbox.runtime import SandboxConfig, SandboxRuntime

PUBLIC = ("0.0.0.0", "::", "192.0.2.10", "10.0.0.1", "example.com", "")  # noqa: S104


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.0.1", "::1", "localhost", "10.213.4.1"])
def test_loopback_and_the_pod_bridge_are_private(host: str) -> None:
    assert is_private(host)


@pytest.mark.parametrize("host", PUBLIC)
def test_any_other_address_is_not(host: str) -> None:
    assert not is_private(host)


def test_the_api_server_refuses_a_public_address(tmp_path: Path) -> None:
    config = SandboxConfig(
        state_dir=tmp_path,
        kubeconfig_path=tmp_path / "kubeconfig",
        nodes=0,
        agent=False,
        host="0.0.0.0",  # noqa: S104
    )
    runtime = SandboxRuntime(config)

    async def start() -> None:
        try:
            await runtime.start()
        finally:
            await runtime.stop()

    expected = re.escape("the sandbox API server: refusing to listen on '0.0.0.0'")
    with pytest.raises(BindRefused, match=expected):
        asyncio.run(start())


def test_the_kubelet_api_and_the_api_relay_refuse_a_public_address(tmp_path: Path) -> None:
    kubelet = KubeletApi(
        tmp_path, lambda ns, name: None, cert=tmp_path, key=tmp_path, client_ca=None
    )
    with pytest.raises(BindRefused, match="kubelet API"):
        asyncio.run(kubelet.start("0.0.0.0"))  # noqa: S104
    relay = ApiForwarder("::", ("127.0.0.1", 1), ipaddress.ip_network("127.0.0.0/8"))
    with pytest.raises(BindRefused, match="API relay"):
        asyncio.run(relay.start((0,)))


def _listening_inodes(table: Path) -> dict[str, str]:
    """socket inode -> local address of the LISTEN sockets in one /proc/net table."""
    found: dict[str, str] = {}
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] != "0A":  # TCP_LISTEN
            continue
        address_hex = fields[1].split(":")[0]
        raw = bytes.fromhex(address_hex)
        if len(raw) == 4:
            address = socket.inet_ntop(socket.AF_INET, raw[::-1])
        else:  # four little-endian 32-bit words
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
            address = socket.inet_ntop(socket.AF_INET6, words)
        found[fields[9]] = address
    return found


def _own_listeners() -> list[str]:
    """The local addresses this process listens on (its fds matched to the kernel's tables)."""
    tables: dict[str, str] = {}
    for name in ("tcp", "tcp6"):
        tables.update(_listening_inodes(Path("/proc/net") / name))
    addresses = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inode = target[len("socket:[") : -1]
            if inode in tables:
                addresses.append(tables[inode])
    return addresses


def test_a_running_sandbox_listens_on_private_addresses_only(sandbox: Sandbox) -> None:
    listeners = _own_listeners()
    assert listeners, "the sandbox's API server should be listening"
    port = int(sandbox.url.rsplit(":", 1)[1])
    assert sandbox.url.startswith("http://127.0.0.1:") and port > 0
    public = [a for a in listeners if not is_private(a)]
    assert public == [], f"listeners on public addresses: {public}"
