"""Pod networking with root: isolation, pod-to-pod TCP by name, host reachability, cleanup."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from agent_harness import ROOT_MARKS, container, make_pod, read_log, run, sh, wait_for
from elastrain_sandbox.agent import hostcmd, hosts
from elastrain_sandbox.agent.instance import InstanceId
from elastrain_sandbox.agent.network import (
    NETNS_PREFIX,
    VETH_PREFIX,
    BridgeNetwork,
    PodNetwork,
    open_network,
    sweep_stale,
)
from elastrain_sandbox.agent.pod import PodRuntime, RuntimeConfig

pytestmark = list(ROOT_MARKS)

PORT = 29400
# Serves one line naming the pod, on 0.0.0.0:PORT, until killed.
SERVER = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    f"s.bind(('0.0.0.0', {PORT})); s.listen(8); print('listening', flush=True)\n"
    "while True:\n"
    "    c,_=s.accept(); c.sendall(socket.gethostname().encode()); c.close()\n"
)
CLIENT = (
    "import socket,sys,time\n"
    "deadline=time.time()+20\n"
    "while True:\n"
    "    try:\n"
    f"        c=socket.create_connection((sys.argv[1], {PORT}), timeout=2); break\n"
    "    except OSError:\n"
    "        if time.time()>deadline: raise\n"
    "        time.sleep(0.05)\n"
    "print('got', c.recv(100).decode(), flush=True)\n"
)


def _names(kind: str) -> str:
    return hostcmd.run(["ip", "netns", "list"] if kind == "netns" else ["ip", "-o", "link"])


def peers_provider(runtimes: list[PodRuntime]):  # type: ignore[no-untyped-def]
    """Hosts entries from the live runtimes: what the agent computes from the store."""

    def provide(rt: PodRuntime) -> list[hosts.HostEntry]:
        objs = []
        for other in runtimes:
            if other.net is not None:
                objs.append({**other.pod, "status": {"podIP": other.net.ip, "phase": "Running"}})
        assert rt.net is not None
        return hosts.entries_for(rt.pod, rt.net.ip, objs, [])

    return provide


def test_two_pods_same_port_reach_each_other_by_hostname_subdomain(config: RuntimeConfig) -> None:
    async def body() -> None:
        runtimes: list[PodRuntime] = []
        config.hosts_provider = peers_provider(runtimes)
        for index in range(2):
            other = f"job-worker-{1 - index}.job"
            script = f'python3 -c "$SERVER" & python3 -c "$CLIENT" {other}; wait'
            c = sh(
                "main",
                script,
                env=[{"name": "SERVER", "value": SERVER}, {"name": "CLIENT", "value": CLIENT}],
            )
            pod = make_pod(
                f"job-worker-{index}", c, hostname=f"job-worker-{index}", subdomain="job"
            )
            runtimes.append(PodRuntime(pod, config, lambda: None))
        for rt in runtimes:
            rt.start()
        await wait_for(lambda: all(rt.net is not None for rt in runtimes), what="pod networks")
        for rt in runtimes:
            rt.refresh_hosts()  # the agent does this whenever a peer gets its IP
        for index, rt in enumerate(runtimes):
            expected = f"got job-worker-{1 - index}"

            def answered(rt: PodRuntime = rt, expected: str = expected) -> bool:
                log = read_log(config, rt, "main")
                return expected in log and "listening" in log  # both bound port 29400

            await wait_for(answered, 30, expected)
            assert read_log(config, rt, "main").count("listening") == 1  # no port collision
        # The host reaches a pod IP directly (the bridge holds the gateway address).
        ip = runtimes[0].status()["podIP"]
        with socket.create_connection((ip, PORT), timeout=5) as conn:
            assert conn.recv(100) == b"job-worker-0"
        for rt in runtimes:
            await rt.teardown()

    run(body)


def test_hosts_update_is_visible_in_a_running_pod(config: RuntimeConfig) -> None:
    async def body() -> None:
        extra: list[hosts.HostEntry] = []

        def provide(rt: PodRuntime) -> list[hosts.HostEntry]:
            assert rt.net is not None
            return [hosts.HostEntry(rt.net.ip, ("me",)), *extra]

        config.hosts_provider = provide
        script = "until grep -q late-peer /etc/hosts; do sleep 0.05; done; getent hosts late-peer"
        rt = PodRuntime(
            make_pod("p", sh("main", script), restartPolicy="Never"), config, lambda: None
        )
        rt.start()
        await wait_for(lambda: "running" in container(rt)["state"], what="container running")
        inode = (rt.dir / "hosts").stat().st_ino
        extra.append(hosts.HostEntry("10.99.0.7", ("late-peer",)))
        rt.refresh_hosts()
        assert (rt.dir / "hosts").stat().st_ino == inode
        await wait_for(lambda: rt.phase() == "Succeeded", what="pod to see the new entry")
        assert read_log(config, rt, "main").split() == ["10.99.0.7", "late-peer"]
        await rt.teardown()

    run(body)


def test_teardown_and_close_remove_every_kernel_object() -> None:
    net = open_network(InstanceId.new())
    assert isinstance(net, BridgeNetwork)
    pod = net.add_pod("uid-1")
    assert pod.netns is not None and pod.netns in _names("netns")
    net.remove_pod("uid-1")
    assert pod.netns not in _names("netns")
    assert VETH_PREFIX + net.instance.tag not in _names("link")
    net.close()
    assert net.bridge not in _names("link")


def test_parallel_instances_get_distinct_subnets_and_names() -> None:
    first, second = open_network(InstanceId.new()), open_network(InstanceId.new())
    try:
        assert isinstance(first, BridgeNetwork) and isinstance(second, BridgeNetwork)
        assert not first.subnet.overlaps(second.subnet)
        assert first.bridge != second.bridge
        assert first.add_pod("a").netns != second.add_pod("a").netns
    finally:
        first.close()
        second.close()


def test_sweep_removes_what_a_dead_instance_left() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # its PID now names a dead owner
    dead = InstanceId(child.pid, 0)
    if dead.alive():
        pytest.skip("the dead child's PID was reused at once; cannot simulate a dead owner")
    netns = f"{NETNS_PREFIX}{dead.tag}-0000"
    link = f"{VETH_PREFIX}{dead.tag}0000"
    hostcmd.run(["ip", "netns", "add", netns])
    hostcmd.run(["ip", "link", "add", link, "type", "bridge"])
    removed = sweep_stale()
    assert netns in removed and link in removed
    assert netns not in _names("netns")
    assert link not in _names("link")


def test_live_instances_are_never_swept(network: PodNetwork) -> None:
    assert isinstance(network, BridgeNetwork)
    pod = network.add_pod("uid-live")
    sweep_stale()
    assert pod.netns is not None and pod.netns in _names("netns")
    assert network.bridge in _names("link")
    assert os.getpid() == network.instance.pid


def test_concurrent_pod_setups_get_distinct_addresses(network: PodNetwork) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        pods = list(pool.map(network.add_pod, [f"uid-{i}" for i in range(8)]))
    assert len({p.ip for p in pods}) == 8
    assert len({p.netns for p in pods}) == 8
    listed = _names("netns")
    assert all(p.netns is not None and p.netns in listed for p in pods)
    network.remove_pod("uid-0")
    assert network.add_pod("uid-new").ip not in {p.ip for p in pods}  # no immediate reuse
