"""``pods/exec`` with the real kubectl (WebSocket ``v5.channel.k8s.io``) and a raw client."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from elastrain_sandbox.embedded import Sandbox
from sandbox_fixtures import Kubectl, wait_for

NS = "exec-test"
IS_ROOT = os.geteuid() == 0


def _pod(name: str, containers: list[str], command: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": c, "image": "busybox", "command": command} for c in containers],
        },
    }


def _phase(sb: Sandbox, name: str) -> str | None:
    return (sb.store.get("pods", name, NS).get("status") or {}).get("phase")


def _all_running(sb: Sandbox, name: str) -> bool:
    statuses = (sb.store.get("pods", name, NS).get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all("running" in (cs.get("state") or {}) for cs in statuses)


def _init_running(sb: Sandbox, name: str) -> bool:
    status = sb.store.get("pods", name, NS).get("status") or {}
    inits = status.get("initContainerStatuses") or []
    return bool(inits) and "running" in (inits[0].get("state") or {})


@pytest.fixture(scope="module")
def k(shared_sandbox: Sandbox) -> Iterator[Kubectl]:
    sb = shared_sandbox
    sb.store.create("namespaces", {"metadata": {"name": NS}})
    sb.store.create("pods", _pod("one", ["main"], ["sleep", "300"]), NS)
    sb.store.create("pods", _pod("two", ["a", "b"], ["sleep", "300"]), NS)
    sb.store.create("pods", _pod("done", ["main"], ["true"]), NS)
    waiting = _pod("waiting", ["main"], ["sleep", "300"])  # held back by its init container
    waiting["spec"]["initContainers"] = [
        {"name": "init", "image": "busybox", "command": ["sleep", "300"]}
    ]
    sb.store.create("pods", waiting, NS)
    wait_for(lambda: _all_running(sb, "one"), 30, what="pod one running")
    wait_for(lambda: _all_running(sb, "two"), 30, what="pod two running")
    wait_for(lambda: _phase(sb, "done") == "Succeeded", 30, what="pod done succeeded")
    wait_for(lambda: _init_running(sb, "waiting"), 30, what="init container running")
    kubectl = Kubectl(sb)
    try:
        yield kubectl
    finally:
        kubectl.close()


def test_exec_output_and_exit_code(k: Kubectl) -> None:
    r = k("exec", "-n", NS, "one", "--", "sh", "-c", "echo hi; echo oops >&2; exit 3", check=False)
    assert r.returncode == 3
    assert r.stdout == "hi\n"
    assert "oops" in r.stderr


def test_exec_success_exit_zero(k: Kubectl) -> None:
    assert k("exec", "-n", NS, "one", "--", "echo", "fine").stdout == "fine\n"


def test_exec_stdin_reaches_the_command_and_ends(k: Kubectl) -> None:
    data = "".join(f"line {i}\n" for i in range(2000))
    r = k("exec", "-i", "-n", NS, "one", "--", "cat", input=data)
    assert r.stdout == data


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root: the pod's own UTS namespace")
def test_exec_runs_inside_the_pod(k: Kubectl) -> None:
    assert k("exec", "-n", NS, "one", "--", "hostname").stdout.strip() == "one"


def test_exec_named_container_of_several(k: Kubectl) -> None:
    assert k("exec", "-n", NS, "two", "-c", "b", "--", "echo", "b").stdout == "b\n"


def test_exec_errors(k: Kubectl) -> None:
    missing = k("exec", "-n", NS, "nope", "--", "true", check=False)
    assert missing.returncode != 0 and 'pods "nope" not found' in missing.stderr
    bad = k("exec", "-n", NS, "one", "-c", "zz", "--", "true", check=False)
    assert bad.returncode != 0 and "zz" in bad.stderr
    done = k("exec", "-n", NS, "done", "--", "true", check=False)
    assert done.returncode != 0
    assert "cannot exec into a container in a completed pod" in done.stderr
    waiting = k("exec", "-n", NS, "waiting", "-c", "main", "--", "true", check=False)
    assert waiting.returncode != 0
    assert "container main is not running in pod waiting" in waiting.stderr
    init = k("exec", "-n", NS, "waiting", "-c", "init", "--", "echo", "in-init")
    assert init.stdout == "in-init\n"  # a running init container can be exec'd into


def _raw_get(sb: Sandbox, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(sb.url + path) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_exec_container_name_required_when_several(k: Kubectl) -> None:
    code, body = _raw_get(k.sb, f"/api/v1/namespaces/{NS}/pods/two/exec?command=true&stdout=1")
    assert code == 400
    assert "a container name must be specified for pod two" in body["message"]


def test_exec_without_upgrade_is_a_bad_request(k: Kubectl) -> None:
    code, body = _raw_get(k.sb, f"/api/v1/namespaces/{NS}/pods/one/exec?command=true&stdout=1")
    assert code == 400 and "WebSocket" in body["message"]


async def _ws_exec(url: str, protocol: str) -> tuple[bytes, dict[str, Any]]:
    out = b""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=(protocol,)) as ws,
    ):
        assert ws.protocol == protocol
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            if msg.data[0] == 1:
                out += msg.data[1:]
            elif msg.data[0] == 3:
                return out, json.loads(msg.data[1:])
    raise AssertionError(f"no status on the error channel (stdout {out!r})")


@pytest.mark.parametrize("protocol", ["v5.channel.k8s.io", "v4.channel.k8s.io"])
def test_exec_raw_websocket_tty(k: Kubectl, protocol: str) -> None:
    """A tty command sees a terminal; v4 clients (no close channel) are served too."""
    url = (
        k.sb.url.replace("http", "ws", 1) + f"/api/v1/namespaces/{NS}/pods/one/exec"
        "?command=sh&command=-c&command=test+-t+1+%26%26+echo+tty%3B+exit+4&stdout=1&tty=1"
    )
    out, status = asyncio.run(_ws_exec(url, protocol))
    assert out.replace(b"\r", b"") == b"tty\n"
    assert status["status"] == "Failure"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "4"}]
