"""One real control plane per test session (see real_control_plane.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from real_control_plane import RealCluster, start


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    cluster = start(tmp_path_factory.mktemp("real-control-plane"))
    try:
        yield cluster
    finally:
        cluster.control_plane.stop()
