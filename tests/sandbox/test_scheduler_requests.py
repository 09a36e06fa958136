"""How the sandbox scheduler adds up a pod's requests (``api.quantity.pod_requests``, in milli)."""

from __future__ import annotations

from elastrain_sandbox.controllers.scheduler import pod_requests_milli


def test_pod_requests_sum_containers_max_init_containers_add_overhead() -> None:
    pod = {
        "spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}}},
                {"resources": {"requests": {"cpu": "0.75", "bad": "lots"}}},
            ],
            "initContainers": [{"resources": {"limits": {"cpu": "2"}}}],
            "overhead": {"memory": "1Mi"},
        }
    }
    assert pod_requests_milli(pod) == {"cpu": 2000, "memory": (2**30 + 2**20) * 1000}
