"""The node agent on ``HttpSource`` against the EMBEDDED server over HTTP.

The same HTTP path serves the real control plane (tests/realcluster/test_real_nodes.py); here
the embedded server's own scheduler binds pods and its store is read back to check what the
agent wrote through HTTP: list+watch informers, ``pods/status`` patches, the final delete.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_harness import run, wait_for
from elastrain_sandbox.agent import NodeAgent
from elastrain_sandbox.agent.backoff import BackoffPolicy
from elastrain_sandbox.agent.container import processes_with_marker
from elastrain_sandbox.agent.httpsource import HttpSource
from elastrain_sandbox.agent.launch import log_path
from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.embedded import Sandbox

Json = dict[str, Any]


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = Sandbox(nodes=1, agent=False, state_dir=tmp_path_factory.mktemp("http-agent"))
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _pod(sb: Sandbox, ns: str, name: str) -> Json | None:
    try:
        return sb.store.get("pods", name, ns)
    except ApiError:
        return None


def _phase(sb: Sandbox, ns: str, name: str) -> str | None:
    pod = _pod(sb, ns, name)
    return None if pod is None else (pod.get("status") or {}).get("phase")


def test_http_agent_runs_pods_of_the_embedded_server(sb: Sandbox, tmp_path: Path) -> None:
    ns = f"h-{uuid.uuid4().hex[:6]}"
    sb.store.create("namespaces", {"metadata": {"name": ns}})
    sb.store.create(
        "configmaps", {"metadata": {"name": "greeting", "namespace": ns}, "data": {"w": "hello"}}
    )
    state = tmp_path / "agent"

    async def body() -> None:
        source = HttpSource(sb.kubeconfig_path, nodes=["node-0"])
        agent = NodeAgent(source, state, nodes=["node-0"], backoff=BackoffPolicy(0.3, 1.2, 60))
        await agent.start()
        try:
            env = [
                {
                    "name": "WORD",
                    "valueFrom": {"configMapKeyRef": {"name": "greeting", "key": "w"}},
                }
            ]
            done = {
                "metadata": {"name": "done", "namespace": ns},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "command": ["sh", "-c", "echo $WORD; sleep 1"],
                            "env": env,
                        }
                    ],
                },
            }
            sb.store.create("pods", done)
            await wait_for(lambda: _phase(sb, ns, "done") == "Succeeded", 30, "pod done Succeeded")
            pod = _pod(sb, ns, "done")
            assert pod is not None
            status = pod["status"]
            assert status["hostIP"] == agent.host_ip
            assert status["podIP"]
            terminated = status["containerStatuses"][0]["state"]["terminated"]
            assert terminated["exitCode"] == 0
            assert log_path(state, ns, "done", "main", 0).read_text() == "hello\n"

            sleeper = {
                "metadata": {"name": "sleeper", "namespace": ns},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {"name": "main", "image": "busybox", "command": ["sleep", "300"]}
                    ],
                },
            }
            sb.store.create("pods", sleeper)
            await wait_for(
                lambda: _phase(sb, ns, "sleeper") == "Running", 30, "pod sleeper Running"
            )
            running = _pod(sb, ns, "sleeper")
            assert running is not None
            cid = running["status"]["containerStatuses"][0]["containerID"]
            marker = cid.removeprefix("sandbox://")
            assert processes_with_marker(marker)
            sb.store.delete("pods", "sleeper", ns)  # graceful: the agent finishes it
            await wait_for(lambda: _pod(sb, ns, "sleeper") is None, 30, "sleeper deleted")
            await wait_for(lambda: not processes_with_marker(marker), 10, "sleeper's processes")
            # Its last pod gone, the namespace is no longer watched: each watch holds a
            # connection, and a long-lived agent sees many namespaces come and go.
            assert source.followed_namespaces() == [ns]
            sb.store.delete("pods", "done", ns)
            await wait_for(lambda: source.followed_namespaces() == [], 30, "namespace unwatched")
        finally:
            await agent.stop()
        assert not processes_with_marker(marker)

    run(body)


def test_http_source_relists_after_the_watch_breaks(sb: Sandbox) -> None:
    """A watch that fails is followed by a relist: changes made meanwhile still arrive."""
    ns = f"r-{uuid.uuid4().hex[:6]}"
    sb.store.create("namespaces", {"metadata": {"name": ns}})

    async def body() -> None:
        source = HttpSource(sb.kubeconfig_path, nodes=["node-0"])
        seen: list[tuple[str, str, str]] = []
        await source.start(lambda ev: seen.append((ev.kind, ev.type, ev.obj["metadata"]["name"])))
        try:
            informer = source.watch_node("node-0")
            await informer.synced.wait()
            pod = {
                "metadata": {"name": "p1", "namespace": ns},
                "spec": {
                    "nodeName": "node-0",
                    "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
                },
            }
            sb.store.create("pods", pod)
            await wait_for(lambda: ("pods", "ADDED", "p1") in seen, 10, "p1 ADDED")
            await source.client.close()  # every open watch breaks: the informers relist
            sb.store.delete("pods", "p1", ns, grace_period_seconds=0)
            await wait_for(lambda: ("pods", "DELETED", "p1") in seen, 20, "p1 DELETED")
            assert source.lookup("Pod", ns, "p1") is None
        finally:
            await source.stop()

    run(body)


def test_stopping_an_informer_passes_the_callers_own_cancellation_on(sb: Sandbox) -> None:
    """A task cancelled while it waits in ``Informer.stop`` (a node informer's handler stopping
    a namespace's informers, as ``HttpSource.stop`` cancels it) ends cancelled, instead of
    taking the cancellation for the informer's and running on, which hung the agent's stop."""

    async def body() -> None:
        source = HttpSource(sb.kubeconfig_path, nodes=["node-0"])
        await source.start(lambda ev: None)
        try:
            informer = source.watch_node("node-0")
            await informer.synced.wait()

            async def stopper() -> None:
                await informer.stop()
                await asyncio.sleep(3600)  # reached only if the cancellation was swallowed

            outer = asyncio.create_task(stopper())
            await asyncio.sleep(0)  # outer now waits for the informer's task to end
            outer.cancel()
            await asyncio.wait([outer], timeout=10)
            assert outer.done() and outer.cancelled()
        finally:
            await source.stop()

    run(body)
