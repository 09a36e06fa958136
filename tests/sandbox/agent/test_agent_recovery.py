"""Crash safety and degraded mode: a SIGKILLed agent leaves nothing the next one keeps."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from agent_harness import container, make_pod, needs_root, poll_until, read_log, run, run_pod, sh
from elastrain_sandbox.agent import hostcmd
from elastrain_sandbox.agent.backoff import BackoffPolicy
from elastrain_sandbox.agent.cgroups import MemoryController
from elastrain_sandbox.agent.container import processes_with_marker, sweep_orphans
from elastrain_sandbox.agent.instance import InstanceId
from elastrain_sandbox.agent.network import LoopbackNetwork, open_network, sweep_stale
from elastrain_sandbox.agent.pod import RuntimeConfig

# Runs a sandbox with one sleeping pod, prints its container ID and netns, then waits to die.
AGENT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from elastrain_sandbox.embedded import Sandbox
    sb = Sandbox(nodes=1, state_dir=Path(sys.argv[1]))
    sb.start()
    main = {"name": "main", "image": "busybox", "command": ["sh", "-c", "exec sleep 300"]}
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [main]}}
    sb.store.create("pods", pod, namespace="default")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cs = (sb.store.get("pods", "p", "default").get("status") or {}).get("containerStatuses")
        if cs and "running" in cs[0]["state"]:
            break
        time.sleep(0.05)
    agent = sb.runtime.agent
    netns = [rt.net.netns for rt in agent._runtimes.values()]
    print(json.dumps({"cid": cs[0]["containerID"].removeprefix("sandbox://"), "netns": netns}),
          flush=True)
    time.sleep(300)
    """
)


@needs_root
def test_processes_and_namespaces_of_a_killed_agent_are_swept(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready, "the agent subprocess never reported its running pod"
        info = json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    cid, netns = info["cid"], info["netns"]
    left = processes_with_marker(cid)
    assert left  # the agent's death left its container running
    killed = sweep_orphans()
    assert set(left) <= set(killed)
    poll_until(lambda: processes_with_marker(cid) == [], what="orphans to die")
    sweep_stale()
    listed = hostcmd.run(["ip", "netns", "list"])
    assert netns and not any(name in listed for name in netns)


def test_host_network_mode_gives_distinct_loopback_addresses(tmp_path: Path) -> None:
    network = open_network(InstanceId.new(), isolate=False)
    assert isinstance(network, LoopbackNetwork)
    config = RuntimeConfig(
        state_dir=tmp_path, network=network, backoff=BackoffPolicy(base=0.3), namespaces=False
    )
    env = [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]

    async def body() -> None:
        runtimes = []
        for name in ("a", "b"):
            pod = make_pod(name, sh("main", "echo $IP", env=env), restartPolicy="Never")
            runtimes.append(await run_pod(config, pod))
        ips = [rt.status()["podIP"] for rt in runtimes]
        assert len(set(ips)) == 2 and all(ip.startswith("127.") for ip in ips)
        assert [read_log(config, rt, "main").strip() for rt in runtimes] == ips
        assert all(container(rt)["state"]["terminated"]["exitCode"] == 0 for rt in runtimes)
        for rt in runtimes:
            await rt.teardown()

    try:
        run(body)
    finally:
        network.close()
    assert os.getpid() == network.instance.pid


@needs_root
def test_cgroups_of_a_dead_agent_are_swept() -> None:
    memory = MemoryController.detect()
    if memory is None:
        pytest.skip("no writable memory cgroup controller on this host")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead, live = InstanceId(child.pid, 0), InstanceId.new()
    if dead.alive():
        pytest.skip("the dead child's PID was reused at once; cannot simulate a dead owner")
    stale = memory.create(dead.tag, f"{dead.tag}-abc", 2**30)
    mine = memory.create(live.tag, f"{live.tag}-abc", 2**30)
    try:
        assert stale in memory.sweep()
        assert not stale.exists() and mine.exists()
    finally:
        memory.remove(mine)
