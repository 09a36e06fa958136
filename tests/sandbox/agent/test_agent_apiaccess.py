"""Pods and the API server on the real control plane (``agent/apiaccess.py``): the kubernetes
Service's env, the relay, bound service-account tokens and their refresh, the operator image."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import sys
import time
from pathlib import Path
from typing import Any

from agent_harness import make_pod, needs_root, read_log, run, sh, terminal, wait_for
from elastrain_sandbox.agent.apiaccess import (
    MAX_TOKEN_AGE,
    ApiForwarder,
    IssuedToken,
    ServiceEndpoint,
)
from elastrain_sandbox.agent.images import ImageMap
from elastrain_sandbox.agent.pod import PodRuntime, RuntimeConfig
from elastrain_sandbox.agent.volumes import TokenSource, prepare_volumes, token_sources

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def api_access_volume(name: str = "kube-api-access-x", seconds: int = 3607) -> dict[str, Any]:
    """The projected volume admission adds (less the CA ConfigMap, which needs a lookup)."""
    namespace = {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
    return {
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": seconds, "path": "token"}},
                {"downwardAPI": {"items": [{"path": "namespace", **namespace}]}},
            ]
        },
    }


def test_service_env_is_the_kubelets_kubernetes_family() -> None:
    env = ServiceEndpoint("kubernetes.default.svc", 443, "10.213.0.1").env()
    assert env == {
        "KUBERNETES_SERVICE_HOST": "kubernetes.default.svc",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://kubernetes.default.svc:443",
        "KUBERNETES_PORT_443_TCP": "tcp://kubernetes.default.svc:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "kubernetes.default.svc",
    }


def test_service_names_resolve_as_kube_dns_would() -> None:
    endpoint = ServiceEndpoint("kubernetes.default.svc", 443, "10.213.0.1")
    assert "kubernetes" in endpoint.host_names("default")
    others = endpoint.host_names("team-a")
    assert "kubernetes" not in others and "kubernetes.default.svc" in others
    assert ServiceEndpoint("127.0.0.1", 6443).host_names("default") == ()  # host network


def test_tokens_are_refreshed_at_80_percent_of_their_life_at_most_a_day() -> None:
    token = IssuedToken.from_status("t", "2030-01-01T01:00:00Z", now=1893456000.0)  # 00:00
    assert token.expires_at - token.issued_at == 3600
    assert token.refresh_at == token.issued_at + 2880
    long = IssuedToken("t", 0.0, 365 * 86400.0)
    assert long.refresh_at == MAX_TOKEN_AGE


def test_token_sources_are_written_with_their_tokens(tmp_path: Path) -> None:
    pod = make_pod("p", sh("main", "true"), volumes=[api_access_volume()])
    assert token_sources(pod) == [TokenSource("kube-api-access-x", "token", None, 3607)]
    out = prepare_volumes(
        pod, tmp_path, tmp_path / "pod", None, {("kube-api-access-x", "token"): "jwt"}
    )
    assert (out["kube-api-access-x"] / "token").read_text() == "jwt"
    assert (out["kube-api-access-x"] / "namespace").read_text() == "default"
    empty = prepare_volumes(pod, tmp_path, tmp_path / "pod2", None)  # the embedded plane
    assert (empty["kube-api-access-x"] / "token").read_text() == ""


def test_the_operator_image_runs_with_the_project_venv() -> None:
    runtime = ImageMap.default().runtime("ghcr.io/elastrain/operator:0.1.0")
    assert runtime.path().split(":")[0] == str(Path(sys.prefix) / "bin")
    assert runtime.entrypoint == ("python", "-m", "elastrain")


def test_the_relay_forwards_bytes_and_refuses_foreign_peers() -> None:
    async def body() -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
        target = ("127.0.0.1", int(upstream.sockets[0].getsockname()[1]))
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        relay = ApiForwarder("127.0.0.1", target, ipaddress.ip_network("127.0.0.0/8"))
        port = await relay.start(ports=(busy, 0))  # the first choice is taken: any port
        assert port not in (0, busy)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello\n")
        assert await reader.readline() == b"hello\n"
        writer.close()
        await relay.stop()

        strict = ApiForwarder("127.0.0.1", target, ipaddress.ip_network("10.0.0.0/8"))
        port = await strict.start(ports=(0,))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.read() == b""  # closed at once, never relayed
        writer.close()
        await strict.stop()
        taken.close()
        upstream.close()

    run(body)


class FakeIssuer:
    """Mints ``t1``, ``t2``... living ``ttl`` seconds; records every request."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.requests: list[dict[str, Any]] = []

    async def request_token(
        self,
        namespace: str,
        service_account: str,
        *,
        pod_name: str,
        pod_uid: str,
        audiences: list[str],
        expiration_seconds: int,
    ) -> IssuedToken:
        self.requests.append(
            {"ns": namespace, "sa": service_account, "pod": pod_name, "uid": pod_uid}
        )
        now = time.time()
        return IssuedToken(f"t{len(self.requests)}", now, now + self.ttl)


@needs_root
def test_a_pod_gets_the_service_env_and_a_refreshed_bound_token(config: RuntimeConfig) -> None:
    """With an emptyDir over the state dir's top directory too (``/tmp``, as the chart mounts
    one): every volume is mounted from its source as it was before any mount hid it."""
    issuer = FakeIssuer(ttl=1.0)
    endpoint = ServiceEndpoint("kubernetes.default.svc", 443, config.network.host_ip)
    config = dataclasses.replace(config, service=endpoint, tokens=issuer)
    top = "/" + config.state_dir.parts[1]

    async def body() -> None:
        script = (
            f'echo "$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"; cat {SA_DIR}/token; echo; '
            f"cat {SA_DIR}/namespace; echo; "
            f'while [ "$(cat {SA_DIR}/token)" = t1 ]; do sleep 0.05; done; cat {SA_DIR}/token'
        )
        mounts = [
            {"name": "tmp", "mountPath": top},
            {"name": "kube-api-access-x", "mountPath": SA_DIR, "readOnly": True},
        ]
        pod = make_pod(
            "p",
            sh("main", script, volumeMounts=mounts),
            namespace="team-a",
            restartPolicy="Never",
            serviceAccountName="runner",
            volumes=[{"name": "tmp", "emptyDir": {}}, api_access_volume(seconds=600)],
        )
        rt = PodRuntime(pod, config, lambda: None)
        rt.start()
        await wait_for(lambda: terminal(rt), 30, "the pod to see a fresh token")
        log = read_log(config, rt, "main").split()
        assert rt.phase() == "Succeeded", log
        assert log[:3] == ["kubernetes.default.svc:443", "t1", "team-a"]
        assert log[3] != "t1"
        first = issuer.requests[0]
        assert first == {"ns": "team-a", "sa": "runner", "pod": "p", "uid": pod["metadata"]["uid"]}
        await rt.teardown()

    run(body)


@needs_root
def test_a_volume_over_the_checkout_leaves_the_images_own_files_visible(
    config: RuntimeConfig,
) -> None:
    """The trainer and operator images are the project's venv and sources on the host: an
    emptyDir mounted over the directory that holds them (the chart's ``/tmp`` when the checkout
    is under ``/tmp``) must not hide them, as a volume cannot hide an image's files elsewhere."""
    venv = Path(sys.prefix)
    top = "/" + venv.parts[1]

    async def body() -> None:
        container = {
            "name": "main",
            "image": "ghcr.io/elastrain/trainer:0.1.0",
            "command": ["python", "-c", "import elastrain_trainer, sys; print(sys.prefix)"],
            "volumeMounts": [{"name": "cover", "mountPath": top}],
        }
        pod = make_pod(
            "covered",
            container,
            restartPolicy="Never",
            volumes=[{"name": "cover", "emptyDir": {}}],
        )
        rt = PodRuntime(pod, config, lambda: None)
        rt.start()
        await wait_for(lambda: terminal(rt), 30, "the covered pod to finish")
        log = read_log(config, rt, "main")
        assert rt.phase() == "Succeeded", log
        assert log.splitlines()[-1] == str(venv), log  # torch may warn on stderr first
        await rt.teardown()

    run(body)
