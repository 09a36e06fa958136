"""Readiness and liveness probes against real containers."""

from __future__ import annotations

from agent_harness import container, make_pod, needs_root, run, sh, wait_for
from elastrain_sandbox.agent.pod import PodRuntime, RuntimeConfig
from elastrain_sandbox.agent.probes import ProbeCounter


def fast(probe: dict[str, object], **extra: object) -> dict[str, object]:
    return {**probe, "periodSeconds": 0.1, "timeoutSeconds": 2, **extra}


@needs_root
def test_http_and_tcp_readiness_follow_the_server(config: RuntimeConfig) -> None:
    async def body() -> None:
        flag = config.state_dir / "serve"
        config.state_dir.mkdir(parents=True, exist_ok=True)
        script = f"until [ -f {flag} ]; do sleep 0.05; done; exec python3 -m http.server 8080"
        http = sh(
            "web",
            script,
            ports=[{"name": "http", "containerPort": 8080}],
            readinessProbe=fast({"httpGet": {"path": "/", "port": "http"}}),
        )
        tcp = sh("tcp", "exec sleep 300", readinessProbe=fast({"tcpSocket": {"port": 8080}}))
        rt = PodRuntime(make_pod("p", http, tcp), config, lambda: None)
        rt.start()
        await wait_for(lambda: "running" in container(rt, "web")["state"], what="web running")
        await wait_for(lambda: rt.net is not None, what="pod network")
        assert not container(rt, "web")["ready"]  # the server is not up yet
        flag.touch()
        await wait_for(lambda: container(rt, "web")["ready"], what="http readiness")
        # Containers share the pod's network: the tcp container's probe sees the web server.
        await wait_for(lambda: container(rt, "tcp")["ready"], what="tcp readiness")
        ready = next(c for c in rt.status()["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        await rt.teardown()

    run(body)


def test_exec_readiness_and_liveness(config: RuntimeConfig) -> None:
    async def body() -> None:
        flag = config.state_dir / "ready-flag"
        config.state_dir.mkdir(parents=True, exist_ok=True)
        ready = sh(
            "ready",
            "exec sleep 300",
            readinessProbe=fast({"exec": {"command": ["test", "-f", str(flag)]}}),
        )
        live = sh(
            "live",
            "exec sleep 300",
            livenessProbe=fast({"exec": {"command": ["false"]}}, failureThreshold=2),
        )
        pod = make_pod("p", ready, live, terminationGracePeriodSeconds=1)
        rt = PodRuntime(pod, config, lambda: None)
        rt.start()
        await wait_for(lambda: container(rt, "live")["restartCount"] >= 1, what="liveness restart")
        last = container(rt, "live")["lastState"]["terminated"]
        assert last["exitCode"] == 143  # SIGTERM from the liveness kill
        assert not container(rt, "ready")["ready"]
        flag.touch()
        await wait_for(lambda: container(rt, "ready")["ready"], what="exec readiness")
        await rt.teardown()

    run(body)


def test_probe_thresholds() -> None:
    counter = ProbeCounter(success_threshold=2, failure_threshold=3)
    assert [counter.record(ok) for ok in (True, True, False, False, False, True)] == [
        None,
        True,
        None,
        None,
        False,
        None,
    ]


def test_a_not_ready_sidecar_keeps_the_pod_not_ready(config: RuntimeConfig) -> None:
    async def body() -> None:
        flag = config.state_dir / "sidecar-ready"
        config.state_dir.mkdir(parents=True, exist_ok=True)
        probe = fast({"exec": {"command": ["test", "-f", str(flag)]}})
        sidecar = sh("proxy", "exec sleep 300", restartPolicy="Always", readinessProbe=probe)
        rt = PodRuntime(
            make_pod("p", sh("main", "exec sleep 300"), initContainers=[sidecar]),
            config,
            lambda: None,
        )
        rt.start()

        def pod_ready() -> bool:
            conditions = rt.status()["conditions"]
            return next(c for c in conditions if c["type"] == "Ready")["status"] == "True"

        await wait_for(lambda: container(rt, "main")["ready"], what="main ready")
        assert not pod_ready()
        flag.touch()
        await wait_for(pod_ready, what="pod ready once the sidecar is")
        await rt.teardown()

    run(body)


def test_startup_probe_gates_started_and_ready_and_kills_on_failure(
    config: RuntimeConfig,
) -> None:
    async def body() -> None:
        flag = config.state_dir / "warmed-up"
        config.state_dir.mkdir(parents=True, exist_ok=True)
        slow = sh(
            "slow",
            "exec sleep 300",
            startupProbe=fast(
                {"exec": {"command": ["test", "-f", str(flag)]}}, failureThreshold=1000
            ),
            livenessProbe=fast({"exec": {"command": ["test", "-f", str(flag)]}}),
        )
        stuck = sh(
            "stuck",
            "exec sleep 300",
            startupProbe=fast({"exec": {"command": ["false"]}}, failureThreshold=2),
        )
        rt = PodRuntime(make_pod("p", slow, stuck), config, lambda: None)
        rt.start()
        await wait_for(lambda: "running" in container(rt, "slow")["state"], what="running")
        status = container(rt, "slow")
        assert (status["started"], status["ready"]) == (False, False)
        await wait_for(lambda: container(rt, "stuck")["restartCount"] >= 1, what="startup kill")
        assert container(rt, "slow")["restartCount"] == 0  # liveness waits for startup
        flag.touch()
        await wait_for(lambda: container(rt, "slow")["started"], what="started")
        await wait_for(lambda: container(rt, "slow")["ready"], what="ready after startup")
        await rt.teardown()

    run(body)
