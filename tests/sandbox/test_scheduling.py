"""Scheduler and node lifecycle: GPUs, Unschedulable, node add/NotReady/removal, with the agent."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from elastrain_sandbox.apiserver.store import WatchEvent
from elastrain_sandbox.embedded import Sandbox
from sandbox_fixtures import Kubectl, wait_for


def gpu_pod(name: str, gpus: int, command: str = "sleep 60") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sh", "-c", command],
                    "resources": {"limits": {"nvidia.com/gpu": gpus}},
                }
            ],
        },
    }


def _condition(pod: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next(
        (c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == type_), None
    )


def test_pod_needing_more_gpus_waits_then_runs_on_a_new_node(tmp_path: Path) -> None:
    with Sandbox(nodes=2, gpus_per_node=1, state_dir=tmp_path) as sb:
        store = sb.store
        store.create("pods", gpu_pod("big", 2), "default")
        cond = wait_for(
            lambda: (
                (c := _condition(store.get("pods", "big", "default"), "PodScheduled"))
                and c.get("reason")
                and c
            ),
            what="Unschedulable condition",
        )
        assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
        assert cond["message"] == "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
        events = store.list(
            "events", "default", field_selector="involvedObject.name=big,reason=FailedScheduling"
        ).items
        assert events and events[0]["type"] == "Warning"
        # A pod that fits still schedules while the big one waits.
        store.create("pods", gpu_pod("small", 1), "default")
        wait_for(
            lambda: store.get("pods", "small", "default")["spec"].get("nodeName"),
            what="small bound",
        )

        sb.add_node("gpu-big", gpus=4)
        pod = wait_for(
            lambda: (
                (p := store.get("pods", "big", "default"))["status"].get("phase") == "Running" and p
            ),
            timeout=30,
            what="big pod Running on the new node",
        )
        assert pod["spec"]["nodeName"] == "gpu-big"
        assert _condition(pod, "PodScheduled")["status"] == "True"  # type: ignore[index]
        scheduled = store.list(
            "events", "default", field_selector="involvedObject.name=big,reason=Scheduled"
        ).items
        assert scheduled[0]["message"] == "Successfully assigned default/big to gpu-big"


def test_not_ready_node_evicts_after_the_toleration_and_removed_node_fails_pods(
    tmp_path: Path,
) -> None:
    with Sandbox(nodes=2, state_dir=tmp_path, eviction_timeout=1) as sb:
        store = sb.store
        seen: list[WatchEvent] = []
        store.add_listener(lambda ev: seen.append(ev) if ev.rt.plural == "pods" else None)
        for name, node in (("on-0", "node-0"), ("on-1", "node-1")):
            pod = gpu_pod(name, 0)
            pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
            store.create("pods", pod, "default")

        def running(name: str) -> bool:
            return bool(store.get("pods", name, "default")["status"].get("phase") == "Running")

        wait_for(lambda: running("on-0") and running("on-1"), timeout=30, what="both pods running")

        sb.set_node_ready("node-0", None)  # unreachable
        node = wait_for(
            lambda: (n := store.get("nodes", "node-0")).get("spec", {}).get("taints") and n,
            what="taints",
        )
        assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} == {
            ("node.kubernetes.io/unreachable", "NoSchedule"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
        }
        not_ready = store.list(
            "events", "default", field_selector="involvedObject.name=node-0"
        ).items
        assert "NodeNotReady" in {e["reason"] for e in not_ready}
        marked = wait_for(
            lambda: [
                e.obj
                for e in list(seen)
                if e.obj["metadata"]["name"] == "on-0" and _condition(e.obj, "DisruptionTarget")
            ],
            what="taint-manager eviction",
        )
        assert _condition(marked[0], "DisruptionTarget")["reason"] == "DeletionByTaintManager"  # type: ignore[index]

        sb.remove_node("node-1")
        gone = wait_for(
            lambda: [
                e for e in list(seen) if e.type == "DELETED" and e.obj["metadata"]["name"] == "on-1"
            ],
            what="pod GC of the removed node's pod",
        )
        assert gone
        failed = [
            e.obj
            for e in list(seen)
            if e.obj["metadata"]["name"] == "on-1" and _condition(e.obj, "DisruptionTarget")
        ]
        assert failed[0]["status"]["phase"] == "Failed"
        assert _condition(failed[0], "DisruptionTarget")["reason"] == "DeletionByPodGC"  # type: ignore[index]


def test_logs_and_graceful_delete_with_the_agent(tmp_path: Path) -> None:
    with Sandbox(nodes=1, state_dir=tmp_path) as sb:
        k = Kubectl(sb)
        store = sb.store
        store.create(
            "pods",
            {
                **gpu_pod("once", 0, "echo hello; echo world"),
                "spec": {
                    **gpu_pod("once", 0, "echo hello; echo world")["spec"],
                    "restartPolicy": "Never",
                },
            },
            "default",
        )
        wait_for(
            lambda: store.get("pods", "once", "default")["status"].get("phase") == "Succeeded",
            timeout=30,
            what="pod Succeeded",
        )
        assert k("logs", "once").stdout == "hello\nworld\n"
        assert k("logs", "once", "--tail=1").stdout == "world\n"
        table = k("get", "pod", "once", "--no-headers").stdout.split()
        assert table[:3] == ["once", "0/1", "Completed"]

        store.create(
            "pods", gpu_pod("ticker", 0, "for i in 1 2 3; do echo $i; sleep 0.3; done"), "default"
        )
        wait_for(
            lambda: store.get("pods", "ticker", "default")["status"].get("phase") == "Running",
            timeout=30,
            what="ticker running",
        )
        follow = k("logs", "-f", "ticker", timeout=30)
        assert follow.stdout.split() == ["1", "2", "3"]

        store.create("pods", gpu_pod("sleeper", 0), "default")
        wait_for(
            lambda: store.get("pods", "sleeper", "default")["status"].get("phase") == "Running",
            timeout=30,
            what="sleeper running",
        )
        k("delete", "pod", "sleeper", "--timeout=30s")
        gone = k("get", "pod", "sleeper", check=False)
        assert gone.returncode == 1 and 'pods "sleeper" not found' in gone.stderr
        multi = {
            "metadata": {"name": "two"},
            "spec": {
                "containers": [
                    {"name": "a", "image": "busybox", "command": ["sleep", "30"]},
                    {"name": "b", "image": "busybox", "command": ["sleep", "30"]},
                ]
            },
        }
        store.create("pods", multi, "default")
        # kubectl picks the first container itself; the API answers 400 as the kubelet does.
        url = f"{sb.url}/api/v1/namespaces/default/pods/two/log"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=10)
        assert err.value.code == 400
        assert (
            "a container name must be specified for pod two, choose one of: [a b]"
            in json.loads(err.value.read())["message"]
        )
        k.close()
