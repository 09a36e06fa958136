"""The sandbox at benchmark scale: 1,000 custom resources owning 5,000 pods.

Correctness only (no timings: speed figures belong to ``bench/``): every pod is scheduled,
indexed lists return exactly their objects, and deleting owners garbage-collects their pods.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from elastrain_sandbox.embedded import Sandbox
from sandbox_fixtures import wait_for

JOBS, PODS_PER_JOB = 1000, 5


@pytest.mark.slow
def test_thousand_owners_five_thousand_pods(
    tmp_path: Path, widget_crd: str, widget: Callable[..., str]
) -> None:
    with Sandbox(nodes=50, cpus_per_node=64, state_dir=tmp_path, agent=False) as sb:
        store = sb.store
        store.create("customresourcedefinitions.apiextensions.k8s.io", yaml.safe_load(widget_crd))
        for i in range(JOBS):
            owner = store.create(
                "widgets.example.test", yaml.safe_load(widget(f"job{i}")), "default"
            )
            ref = {
                "apiVersion": "example.test/v1",
                "kind": "Widget",
                "name": f"job{i}",
                "uid": owner["metadata"]["uid"],
                "blockOwnerDeletion": True,
            }
            for r in range(PODS_PER_JOB):
                pod = {
                    "metadata": {
                        "name": f"job{i}-worker-{r}",
                        "labels": {"job": f"job{i}"},
                        "ownerReferences": [ref],
                    },
                    "spec": {
                        "containers": [
                            {
                                "name": "c",
                                "image": "busybox",
                                "resources": {"requests": {"cpu": "100m"}},
                            }
                        ]
                    },
                }
                store.create("pods", pod, "default")
        wait_for(
            lambda: not store.list("pods", field_selector="spec.nodeName=", copy=False).items,
            timeout=240,
            interval=0.5,
            what="every pod bound",
        )
        per_node = [
            len(store.list("pods", field_selector=f"spec.nodeName=node-{n}", copy=False).items)
            for n in range(50)
        ]
        assert (
            sum(per_node) == JOBS * PODS_PER_JOB and max(per_node) - min(per_node) <= 1
        )  # spread evenly
        start = sb.request_log.seq
        for i in (0, 499, 999):
            url = f"{sb.url}/api/v1/namespaces/default/pods?labelSelector=job%3Djob{i}"
            with urllib.request.urlopen(url, timeout=30) as resp:
                assert len(json.loads(resp.read())["items"]) == PODS_PER_JOB
        assert [r.verb for r in sb.request_log.since(start)] == ["list"] * 3
        for i in range(100):
            store.delete("widgets.example.test", f"job{i}", "default")
        wait_for(
            lambda: len(store.list("pods", copy=False).items) == (JOBS - 100) * PODS_PER_JOB,
            timeout=120,
            interval=0.5,
            what="dependents of deleted owners collected",
        )
        assert not store.list("pods", label_selector="job in (job0,job99)", copy=False).items
