"""The kubelet's resource metrics: what the agent measures of its containers, and the text
metrics-server parses (``elastrain_sandbox.agent.usage``)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from elastrain_sandbox.agent import usage
from elastrain_sandbox.agent.container import MARKER_VAR
from prometheus_client.parser import text_string_to_metric_families
from sandbox_fixtures import wait_for

BURN = "import time\nend = time.time() + 60\nwhile time.time() < end: pass\n"


def _running(cid: str, node: str = "node-0", pod: str = "p") -> usage.Running:
    return usage.Running(node, "ns", pod, "main", cid, 1700000000.5)


def test_a_marked_process_tree_is_measured_as_its_container() -> None:
    cid = f"test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, MARKER_VAR: cid}
    # A parent and a child both burning: the container's CPU is both of theirs.
    script = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {BURN!r}])\n{BURN}"
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        wait_for(lambda: usage.scan().get(cid, usage.Usage()).cpu_seconds > 0.5, 30, what="cpu")
        got = usage.scan()[cid]
        assert got.memory_bytes > 1_000_000  # two Python interpreters' resident sets
        assert cid not in {k for k in usage.scan() if not k.startswith("test-")}
    finally:
        proc.kill()
        proc.wait()
    wait_for(lambda: cid not in usage.scan() or _orphans_gone(cid), 30, what="gone")


def _orphans_gone(cid: str) -> bool:
    from elastrain_sandbox.agent.container import processes_with_marker

    for pid in processes_with_marker(cid):
        os.kill(pid, 9)
    return not processes_with_marker(cid)


def test_counters_never_go_back_and_a_node_keeps_its_ended_containers_cpu() -> None:
    meter = usage.Meter()
    a, b = _running("a"), _running("b")
    samples, nodes = meter.read([a, b], {"a": usage.Usage(5.0, 100), "b": usage.Usage(1.0, 50)})
    assert {s.running.container_id: s.usage.cpu_seconds for s in samples} == {"a": 5.0, "b": 1.0}
    assert nodes["node-0"] == usage.Usage(6.0, 150)
    # An unreaped child dropped out of a's count for a moment: a's counter holds.
    samples, nodes = meter.read([a, b], {"a": usage.Usage(4.0, 90), "b": usage.Usage(2.0, 50)})
    assert {s.running.container_id: s.usage.cpu_seconds for s in samples} == {"a": 5.0, "b": 2.0}
    # b ended: it is no longer sampled, but the node's CPU counter keeps what it used.
    samples, nodes = meter.read([a], {"a": usage.Usage(7.0, 90)})
    assert [s.running.container_id for s in samples] == ["a"]
    assert nodes["node-0"] == usage.Usage(9.0, 90)
    # A container the agent lists but whose processes are gone is not sampled at all.
    samples, _ = meter.read([a, _running("c")], {"a": usage.Usage(8.0, 90)})
    assert [s.running.container_id for s in samples] == ["a"]


def test_the_exposition_is_the_kubelets_and_lists_only_the_nodes_own_containers() -> None:
    meter = usage.Meter()
    here = _running("a", pod='we"ird')
    there = _running("b", node="node-1", pod="other")
    samples, nodes = meter.read(
        [here, there], {"a": usage.Usage(2.5, 4096), "b": usage.Usage(1.0, 1)}
    )
    own = [s for s in samples if s.running.node == "node-0"]
    text = usage.exposition("node-0", own, nodes, now=1700000100.0)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    cpu = families["container_cpu_usage_seconds"].samples  # the parser drops "_total"
    assert [(s.labels, s.value, s.timestamp) for s in cpu] == [
        ({"container": "main", "namespace": "ns", "pod": 'we"ird'}, 2.5, 1700000100.0)
    ]
    memory = families["container_memory_working_set_bytes"].samples
    assert [s.value for s in memory] == [4096.0]
    start = families["container_start_time_seconds"].samples
    assert [s.value for s in start] == [1700000000.5]
    assert [s.value for s in families["node_cpu_usage_seconds"].samples] == [2.5]
    assert [s.value for s in families["node_memory_working_set_bytes"].samples] == [4096.0]
    assert [s.value for s in families["scrape_error"].samples] == [0.0]
    assert 'pod="other"' not in text
