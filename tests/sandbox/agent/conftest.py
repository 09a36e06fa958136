"""Fixtures for the node agent's tests: a real pod network and runtime config per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import IS_ROOT
from elastrain_sandbox.agent.backoff import BackoffPolicy
from elastrain_sandbox.agent.instance import InstanceId
from elastrain_sandbox.agent.network import PodNetwork, open_network
from elastrain_sandbox.agent.pod import RuntimeConfig


@pytest.fixture
def network() -> Iterator[PodNetwork]:
    """This test's own pod network (bridge + netns as root), removed afterwards."""
    net = open_network(InstanceId.new())
    try:
        yield net
    finally:
        net.close()


@pytest.fixture
def config(tmp_path: Path, network: PodNetwork) -> RuntimeConfig:
    """Runtime config with a fast back-off (same rules, tenths of seconds)."""
    return RuntimeConfig(
        state_dir=tmp_path / "state",
        network=network,
        backoff=BackoffPolicy(base=0.3, cap=1.2, reset_after=60),
        namespaces=IS_ROOT,
    )
