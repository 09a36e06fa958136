"""Node addresses agree with what the node agent reports as the pods' ``status.hostIP``."""

from __future__ import annotations

import os
from typing import Any

from elastrain_sandbox.embedded import Sandbox
from sandbox_fixtures import wait_for


def _internal_ip(node: dict[str, Any]) -> str:
    addresses = node["status"]["addresses"]
    return next(a["address"] for a in addresses if a["type"] == "InternalIP")


def test_node_internal_ip_is_the_pods_host_ip(sandbox: Sandbox) -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "nodeName": "node-1",
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "300"]}],
        },
    }
    sandbox.store.create("pods", pod, "default")
    host_ip = wait_for(
        lambda: (sandbox.store.get("pods", "p", "default").get("status") or {}).get("hostIP"),
        30,
        what="the pod's hostIP",
    )
    if os.geteuid() == 0:  # the bridge's address; without root the agent uses loopback
        assert host_ip != "127.0.0.1"
    for node in sandbox.store.list("nodes").items:
        assert _internal_ip(node) == host_ip, node["metadata"]["name"]
    added = sandbox.add_node("late")  # a node registered after the agent started
    assert _internal_ip(added) == host_ip
