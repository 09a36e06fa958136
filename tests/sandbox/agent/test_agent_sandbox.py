"""The node agent inside a real sandbox: store-driven pods, status, kubectl, nodes.

One sandbox serves the module (each test uses its own namespace); tests that change a node
add their own node and pin pods to it with ``spec.nodeName``.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_harness import needs_root
from elastrain_sandbox.agent import NodeAgent
from elastrain_sandbox.agent import agent as agent_module
from elastrain_sandbox.agent.backoff import BackoffPolicy
from elastrain_sandbox.agent.container import processes_with_marker
from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.store import WatchEvent
from elastrain_sandbox.embedded import Sandbox
from sandbox_fixtures import Kubectl

Json = dict[str, Any]


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = Sandbox(
        nodes=2,
        state_dir=tmp_path_factory.mktemp("agent-sandbox"),
        agent_options={"backoff": BackoffPolicy(base=0.3, cap=1.2), "shutdown_grace": 1.0},
    )
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def kubectl(sb: Sandbox) -> Iterator[Kubectl]:
    k = Kubectl(sb)
    try:
        yield k
    finally:
        k.close()


@pytest.fixture
def ns(sb: Sandbox) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    sb.store.create("namespaces", {"metadata": {"name": name}})
    return name


def poll(fn: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Call ``fn`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def pod(name: str, script: str, **spec: Any) -> Json:
    container = {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
    container.update(spec.pop("container", {}))
    return {
        "metadata": {"name": name, "labels": spec.pop("labels", {})},
        "spec": {"containers": [container], **spec},
    }


def get(sb: Sandbox, ns: str, name: str) -> Json | None:
    try:
        return sb.store.get("pods", name, ns)
    except ApiError:
        return None


def status_of(sb: Sandbox, ns: str, name: str) -> Json:
    obj = get(sb, ns, name)
    return (obj or {}).get("status") or {}


def main_state(sb: Sandbox, ns: str, name: str) -> Json:
    statuses = status_of(sb, ns, name).get("containerStatuses") or [{}]
    return statuses[0].get("state") or {}


def container_id(sb: Sandbox, ns: str, name: str) -> str:
    statuses = status_of(sb, ns, name).get("containerStatuses") or [{}]
    return str(statuses[0].get("containerID", "")).removeprefix("sandbox://")


def test_exit_137_reaches_status_kubectl_get_and_logs(
    sb: Sandbox, kubectl: Kubectl, ns: str
) -> None:
    sb.store.create(
        "pods", pod("crash", "echo dying; exit 137", restartPolicy="Never"), namespace=ns
    )
    poll(lambda: status_of(sb, ns, "crash").get("phase") == "Failed", what="pod Failed")
    term = main_state(sb, ns, "crash")["terminated"]
    assert (term["exitCode"], term["reason"]) == (137, "Error")
    status = status_of(sb, ns, "crash")
    assert {c["type"] for c in status["conditions"]} >= {"PodScheduled", "Ready", "Initialized"}
    row = kubectl("get", "pod", "crash", "-n", ns, "--no-headers").stdout.split()
    assert row[:3] == ["crash", "0/1", "Error"]
    assert kubectl("logs", "crash", "-n", ns).stdout == "dying\n"


def test_crash_loop_shows_restarts_and_previous_logs(
    sb: Sandbox, kubectl: Kubectl, ns: str
) -> None:
    sb.store.create("pods", pod("loop", "echo run; exit 1"), namespace=ns)

    def looping() -> bool:
        statuses = status_of(sb, ns, "loop").get("containerStatuses") or [{}]
        waiting = (statuses[0].get("state") or {}).get("waiting") or {}
        return (
            statuses[0].get("restartCount", 0) >= 2 and waiting.get("reason") == "CrashLoopBackOff"
        )

    poll(looping, what="CrashLoopBackOff after two restarts")
    assert status_of(sb, ns, "loop")["phase"] == "Running"
    assert kubectl("logs", "loop", "-n", ns, "--previous").stdout == "run\n"
    events = sb.store.list("events", namespace=ns).items
    reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "loop"}
    assert {"Pulled", "Created", "Started", "BackOff"} <= reasons
    started = next(e for e in events if e["reason"] == "Started")
    node = (get(sb, ns, "loop") or {})["spec"]["nodeName"]
    assert started["source"] == {"component": "kubelet", "host": node}


@needs_root
def test_two_pods_reach_each_other_by_service_dns_name(sb: Sandbox, ns: str) -> None:
    server = (
        "import socket\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('0.0.0.0', 8080)); s.listen(8)\n"
        "while True:\n"
        "    c,_=s.accept(); c.sendall(socket.gethostname().encode()); c.close()\n"
    )
    client = (
        "import socket,sys,time\n"
        "for host in sys.argv[1:]:\n"
        "    deadline=time.time()+30\n"
        "    while True:\n"
        "        try:\n"
        "            c=socket.create_connection((host, 8080), timeout=2); break\n"
        "        except OSError:\n"
        "            if time.time()>deadline: raise\n"
        "            time.sleep(0.1)\n"
        "    print(host, c.recv(100).decode(), flush=True)\n"
    )
    svc = {
        "metadata": {"name": "train"},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {"app": "srv"},
            "ports": [{"port": 8080}],
        },
    }
    sb.store.create("services", svc, namespace=ns)
    srv = pod(
        "srv",
        'exec python3 -c "$SERVER"',
        labels={"app": "srv"},
        hostname="srv-0",
        subdomain="train",
        container={"env": [{"name": "SERVER", "value": server}]},
    )
    sb.store.create("pods", srv, namespace=ns)
    names = f"train train.{ns}.svc.cluster.local srv-0.train srv-0.train.{ns}.svc"
    cli = pod(
        "cli",
        f'exec python3 -c "$CLIENT" {names}',
        restartPolicy="Never",
        container={"env": [{"name": "CLIENT", "value": client}]},
    )
    sb.store.create("pods", cli, namespace=ns)
    poll(lambda: status_of(sb, ns, "cli").get("phase") in ("Succeeded", "Failed"), 60, "client")
    log = (sb.state_dir / "logs" / ns / "cli" / "main" / "0.log").read_text()
    assert status_of(sb, ns, "cli")["phase"] == "Succeeded", log
    assert log.split("\n")[:4] == [f"{name} srv-0" for name in names.split()]


def test_delete_stops_processes_then_removes_the_pod(
    sb: Sandbox, kubectl: Kubectl, ns: str
) -> None:
    script = "trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.1; done"
    sb.store.create("pods", pod("svc", script), namespace=ns)
    poll(lambda: "running" in main_state(sb, ns, "svc"), what="running")
    cid = container_id(sb, ns, "svc")
    assert processes_with_marker(cid)
    deleted: list[Json] = []

    def on_event(ev: WatchEvent) -> None:
        if ev.type == "DELETED" and ev.obj["metadata"].get("namespace") == ns:
            deleted.append(ev.obj)

    sb.store.add_listener(on_event)
    try:
        kubectl("delete", "pod", "svc", "-n", ns, "--wait=false")
        poll(lambda: get(sb, ns, "svc") is None, what="the agent's final delete")
    finally:
        sb.store.remove_listener(on_event)
    # Watchers see how the containers ended in the DELETED event.
    last = deleted[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert last["exitCode"] == 0
    assert deleted[0]["status"]["phase"] == "Succeeded"  # final status, then the final delete
    poll(lambda: not processes_with_marker(cid), 10, "container processes gone")
    log = (sb.state_dir / "logs" / ns / "svc" / "main" / "0.log").read_text()
    # SIGTERM went to the whole group: the shell's trap ran (and its sleep child died).
    assert log.split()[0] == "up" and log.split()[-1] == "bye"


def test_config_map_and_secret_reach_env_and_files(sb: Sandbox, kubectl: Kubectl, ns: str) -> None:
    sb.store.create(
        "configmaps", {"metadata": {"name": "cfg"}, "data": {"mode": "fast"}}, namespace=ns
    )
    sb.store.create(
        "secrets", {"metadata": {"name": "tok"}, "stringData": {"t": "s3cret"}}, namespace=ns
    )
    volume_script = "cat /cfg/mode; echo; " if os.geteuid() == 0 else ""
    spec = pod(
        "cfg",
        volume_script + "echo $MODE $TOKEN",
        restartPolicy="Never",
        volumes=[{"name": "c", "configMap": {"name": "cfg"}}],
        container={
            "env": [
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t"}}},
            ],
            "volumeMounts": [{"name": "c", "mountPath": "/cfg", "readOnly": True}],
        },
    )
    sb.store.create("pods", spec, namespace=ns)
    poll(lambda: status_of(sb, ns, "cfg").get("phase") == "Succeeded", what="pod Succeeded")
    expected = ("fast\n" if volume_script else "") + "fast s3cret\n"
    assert kubectl("logs", "cfg", "-n", ns).stdout == expected


def test_partitioned_node_stops_reporting_until_it_heals(sb: Sandbox, ns: str) -> None:
    node = f"part-{uuid.uuid4().hex[:6]}"
    sb.add_node(node)
    sb.store.create(
        "pods", pod("p", "exec sleep 300", nodeName=node, restartPolicy="Never"), namespace=ns
    )
    poll(lambda: "running" in main_state(sb, ns, "p"), what="running")
    cid = container_id(sb, ns, "p")
    sb.set_node_ready(node, None)  # the kubelet goes silent
    agent = sb.runtime.agent
    assert isinstance(agent, NodeAgent)
    poll(lambda: agent.node_reachable(node) is False, what="the agent to see the partition")
    pids = processes_with_marker(cid)
    assert pids, "a partition must not stop the containers"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    poll(lambda: not processes_with_marker(cid), 10, "container killed")
    # Nothing can be reported while partitioned: status still says running.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert "running" in main_state(sb, ns, "p")
        time.sleep(0.1)
    sb.set_node_ready(node, True)
    poll(lambda: "terminated" in main_state(sb, ns, "p"), what="status after the heal")
    assert main_state(sb, ns, "p")["terminated"]["exitCode"] == 137
    sb.remove_node(node)


def test_removed_node_takes_its_processes_with_it(sb: Sandbox, ns: str) -> None:
    node = f"gone-{uuid.uuid4().hex[:6]}"
    sb.add_node(node)
    sb.store.create("pods", pod("p", "exec sleep 300", nodeName=node), namespace=ns)
    poll(lambda: "running" in main_state(sb, ns, "p"), what="running")
    cid = container_id(sb, ns, "p")
    pod_dir = sb.state_dir / "pods" / (get(sb, ns, "p") or {})["metadata"]["uid"]
    assert pod_dir.is_dir()
    sb.remove_node(node)
    poll(lambda: not processes_with_marker(cid), 10, "processes killed with the node")
    poll(lambda: not pod_dir.exists(), 10, "the pod sandbox torn down")
    poll(lambda: get(sb, ns, "p") is None, 30, "pod GC to remove the orphaned pod")


@needs_root
def test_pvc_is_shared_between_pods_and_outlives_them(sb: Sandbox, ns: str) -> None:
    volume = [{"name": "ckpt", "persistentVolumeClaim": {"claimName": "shared"}}]
    mount = {"volumeMounts": [{"name": "ckpt", "mountPath": "/ckpt"}]}
    writer = pod(
        "writer",
        "echo step-7 > /ckpt/latest",
        restartPolicy="Never",
        volumes=volume,
        container=mount,
    )
    sb.store.create("pods", writer, namespace=ns)
    poll(lambda: status_of(sb, ns, "writer").get("phase") == "Succeeded", what="writer done")
    reader = pod(
        "reader", "cat /ckpt/latest", restartPolicy="Never", volumes=volume, container=mount
    )
    sb.store.create("pods", reader, namespace=ns)
    poll(lambda: status_of(sb, ns, "reader").get("phase") == "Succeeded", what="reader done")
    log = sb.state_dir / "logs" / ns / "reader" / "main" / "0.log"
    assert log.read_text() == "step-7\n"
    sb.store.delete("pods", "writer", ns)
    sb.store.delete("pods", "reader", ns)
    poll(lambda: get(sb, ns, "reader") is None, what="reader deleted")
    assert (Path(sb.state_dir) / "pvc" / ns / "shared" / "latest").read_text() == "step-7\n"


def test_hosts_files_follow_peers_coming_and_going(sb: Sandbox, ns: str) -> None:
    for name in ("a", "b"):
        spec = pod(name, "exec sleep 300", hostname=name, subdomain="grp")
        sb.store.create("pods", spec, namespace=ns)
    uid = (get(sb, ns, "a") or {})["metadata"]["uid"]
    hosts_file = sb.state_dir / "pods" / uid / "hosts"

    def b_ip() -> str:
        return str(status_of(sb, ns, "b").get("podIP", ""))

    poll(b_ip, what="b's IP")
    poll(
        lambda: hosts_file.exists() and f"{b_ip()}\tb.grp." in hosts_file.read_text(), what="b in a"
    )
    inode = hosts_file.stat().st_ino
    sb.store.delete("pods", "b", ns, grace_period_seconds=1)
    poll(lambda: "b.grp" not in hosts_file.read_text(), what="b gone from a's hosts file")
    assert hosts_file.stat().st_ino == inode  # rewritten in place: the bind mount still sees it


def test_a_change_held_back_by_the_hosts_share_is_written_when_its_turn_comes(
    sb: Sandbox, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hosts passes take at most ``HOSTS_SHARE`` of the agent's time: a change that comes
    while a pass is cooling down must still be written once the cool-down ends, by the agent's
    own timer, even when nothing else happens afterwards."""
    # A pass of a millisecond now cools down for about a second.
    monkeypatch.setattr(agent_module, "HOSTS_SHARE", 1e-3)
    names = ("a", "b", "c")
    for name in names:
        sb.store.create(
            "pods", pod(name, "exec sleep 300", hostname=name, subdomain="grp"), namespace=ns
        )
    uid = (get(sb, ns, "a") or {})["metadata"]["uid"]
    hosts_file = sb.state_dir / "pods" / uid / "hosts"

    def all_in_a() -> bool:
        ips = {n: status_of(sb, ns, n).get("podIP") for n in ("b", "c")}
        text = hosts_file.read_text() if hosts_file.exists() else ""
        return all(ip and f"{ip}\t{n}.grp." in text for n, ip in ips.items())

    poll(all_in_a, what="b and c in a's hosts file")
    # Gone in one burst: the first pass drops one, the other waits for the timer.
    for name in ("b", "c"):
        sb.store.delete("pods", name, ns, grace_period_seconds=0)
    poll(
        lambda: "b.grp" not in hosts_file.read_text() and "c.grp" not in hosts_file.read_text(),
        what="b and c gone from a's hosts file",
    )


def test_a_recreated_pod_starts_with_fresh_logs(sb: Sandbox, kubectl: Kubectl, ns: str) -> None:
    for generation in ("first", "second"):
        sb.store.create("pods", pod("w", f"echo {generation}", restartPolicy="Never"), namespace=ns)
        poll(lambda: status_of(sb, ns, "w").get("phase") == "Succeeded", what=generation)
        assert kubectl("logs", "w", "-n", ns).stdout == f"{generation}\n"
        sb.store.delete("pods", "w", ns)
        poll(lambda: get(sb, ns, "w") is None, what=f"{generation} deleted")
