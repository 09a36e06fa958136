"""The pod runtime end to end on real processes: exit codes, env, restarts, stop, volumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from agent_harness import (
    IS_ROOT,
    container,
    make_pod,
    needs_root,
    read_log,
    run,
    run_pod,
    sh,
    terminal,
    wait_for,
)
from elastrain_sandbox.agent.cgroups import MemoryController
from elastrain_sandbox.agent.container import processes_with_marker
from elastrain_sandbox.agent.pod import PodRuntime, RuntimeConfig


def test_exit_137_is_reported_as_error_and_pod_fails(config: RuntimeConfig) -> None:
    async def body() -> None:
        rt = await run_pod(config, make_pod("p", sh("main", "exit 137"), restartPolicy="Never"))
        status = rt.status()
        term = container(rt)["state"]["terminated"]
        assert status["phase"] == "Failed"
        assert (term["exitCode"], term["reason"]) == (137, "Error")
        assert term["containerID"].startswith("sandbox://")
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")
        await rt.teardown()

    run(body)


def test_signal_death_maps_to_128_plus_signal(config: RuntimeConfig) -> None:
    async def body() -> None:
        # Kubernetes expansion turns `$$` into `$`, so the shell sees `kill -9 $$`.
        pod = make_pod("p", sh("main", "kill -9 $$$$"), restartPolicy="Never")
        rt = await run_pod(config, pod)
        assert container(rt)["state"]["terminated"]["exitCode"] == 137
        await rt.teardown()

    run(body)


def test_success_completes_and_logs_go_to_the_restart_file(config: RuntimeConfig) -> None:
    async def body() -> None:
        pod = make_pod("p", sh("main", "echo out; echo err >&2"), restartPolicy="OnFailure")
        rt = await run_pod(config, pod)
        assert rt.phase() == "Succeeded"
        assert container(rt)["state"]["terminated"]["reason"] == "Completed"
        assert read_log(config, rt, "main").splitlines() == ["out", "err"]
        await rt.teardown()

    run(body)


def test_downward_api_and_expansion_reach_the_process(config: RuntimeConfig) -> None:
    async def body() -> None:
        env = [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "ROLE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['role']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "ADDR", "value": "$(POD).$(NS):$(PORT)"},
        ]
        c = {
            "name": "main",
            "image": "busybox",
            "command": ["sh", "-c"],
            "args": ["echo $POD $NS $UID $ROLE $NODE $IP $HOST_IP $CPU $ADDR $(POD)"],
            "env": env,
            "resources": {"limits": {"cpu": "1500m"}},
        }
        pod = make_pod("worker-0", c, namespace="team-a", restartPolicy="Never")
        pod["metadata"]["labels"] = {"role": "worker"}
        rt = await run_pod(config, pod)
        status = rt.status()
        uid = pod["metadata"]["uid"]
        expected = (
            f"worker-0 team-a {uid} worker node-1 {status['podIP']} {status['hostIP']} 2 "
            "worker-0.team-a:$(PORT) worker-0"
        )
        assert read_log(config, rt, "main").strip() == expected
        await rt.teardown()

    run(body)


def test_always_restarts_with_crash_loop_back_off(config: RuntimeConfig) -> None:
    async def body() -> None:
        rt = PodRuntime(make_pod("p", sh("main", "echo run; exit 3")), config, lambda: None)
        rt.start()
        seen_backoff: list[dict[str, Any]] = []

        def backing_off() -> bool:
            status = container(rt)
            if status["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff":
                seen_backoff.append(status)
            return bool(seen_backoff) and status["restartCount"] >= 3

        await wait_for(backing_off, 30, "three restarts with a back-off in between")
        status = seen_backoff[0]
        assert status["lastState"]["terminated"]["exitCode"] == 3
        assert rt.phase() == "Running"
        assert read_log(config, rt, "main", 2).strip() == "run"
        await rt.teardown()

    run(body)


def test_on_failure_restarts_until_success(config: RuntimeConfig) -> None:
    async def body() -> None:
        script = "if [ -f /data/once ]; then exit 0; fi; touch /data/once; exit 1"
        marker = config.state_dir / "flag"
        if not IS_ROOT:  # no mount namespace: use a host path the script can reach
            script = script.replace("/data/once", str(marker))
        c = sh("main", script, volumeMounts=[{"name": "d", "mountPath": "/data"}])
        pod = make_pod("p", c, restartPolicy="OnFailure", volumes=[{"name": "d", "emptyDir": {}}])
        config.state_dir.mkdir(parents=True, exist_ok=True)
        rt = await run_pod(config, pod)
        status = container(rt)
        assert rt.phase() == "Succeeded"
        assert status["restartCount"] == 1
        assert status["lastState"]["terminated"]["exitCode"] == 1
        await rt.teardown()

    run(body)


def test_stop_kills_the_whole_process_group_after_grace(config: RuntimeConfig) -> None:
    async def body() -> None:
        # The main process ignores SIGTERM and has a child that does too: only SIGKILL works.
        script = "trap '' TERM; sh -c \"trap '' TERM; sleep 300\" & echo started; wait"
        rt = PodRuntime(make_pod("p", sh("main", script)), config, lambda: None)
        rt.start()
        # The echo can land before the agent has read the start pipe: wait for both.
        await wait_for(
            lambda: "started" in read_log(config, rt, "main") and "containerID" in container(rt),
            what="container up",
        )
        cid = container(rt)["containerID"].removeprefix("sandbox://")
        await wait_for(lambda: len(processes_with_marker(cid)) >= 3, what="child processes")
        await rt.stop(grace=0.5)
        # 137: SIGTERM was ignored, so it took the SIGKILL after the grace period.
        assert container(rt)["state"]["terminated"]["exitCode"] == 137
        assert processes_with_marker(cid) == []
        await rt.teardown()

    run(body)


def test_stop_sigterm_ends_a_cooperative_container_with_143(config: RuntimeConfig) -> None:
    async def body() -> None:
        rt = PodRuntime(make_pod("p", sh("main", "echo up; exec sleep 300")), config, lambda: None)
        rt.start()
        await wait_for(lambda: "up" in read_log(config, rt, "main"), what="container up")
        await wait_for(lambda: "running" in container(rt)["state"], what="running state")
        await rt.stop(grace=30)
        term = container(rt)["state"]["terminated"]
        assert term["exitCode"] == 128 + signal.SIGTERM
        assert rt.phase() == "Failed"  # a deleted pod's phase is final, as on a real node
        await rt.teardown()

    run(body)


def test_leftover_children_die_with_the_main_process(config: RuntimeConfig) -> None:
    async def body() -> None:
        script = "setsid sleep 300 & sleep 300 & echo spawned; exit 0"
        rt = await run_pod(config, make_pod("p", sh("main", script), restartPolicy="Never"))
        cid = container(rt)["containerID"].removeprefix("sandbox://")
        assert processes_with_marker(cid) == []
        await rt.teardown()

    run(body)


def test_missing_command_for_an_unknown_image_is_a_config_error(config: RuntimeConfig) -> None:
    async def body() -> None:
        pod = make_pod("p", {"name": "main", "image": "example.com/mystery:1"})
        rt = PodRuntime(pod, config, lambda: None)
        rt.start()

        def waiting_reason() -> str:
            return str(container(rt)["state"].get("waiting", {}).get("reason"))

        await wait_for(lambda: waiting_reason() == "CreateContainerConfigError")
        assert "command" in container(rt)["state"]["waiting"]["message"]
        assert rt.phase() == "Pending"
        await rt.teardown()

    run(body)


def test_missing_executable_is_a_start_error(config: RuntimeConfig) -> None:
    async def body() -> None:
        c = {"name": "main", "image": "busybox", "command": ["no-such-binary-xyz"]}
        rt = await run_pod(config, make_pod("p", c, restartPolicy="Never"))
        term = container(rt)["state"]["terminated"]
        assert term["reason"] == "StartError"
        assert "no-such-binary-xyz" in term["message"]
        await rt.teardown()

    run(body)


def test_trainer_image_runs_with_the_project_venv(config: RuntimeConfig) -> None:
    async def body() -> None:
        c = {
            "name": "main",
            "image": "ghcr.io/example/elastrain/trainer:0.1",
            "command": ["sh", "-c", "command -v torchrun; command -v elastrain-train"],
        }
        rt = await run_pod(config, make_pod("p", c, restartPolicy="Never"))
        venv_bin = Path(sys.prefix) / "bin"
        assert read_log(config, rt, "main").split() == [
            str(venv_bin / "torchrun"),
            str(venv_bin / "elastrain-train"),
        ]
        await rt.teardown()

    run(body)


def test_init_containers_run_first_in_order(config: RuntimeConfig) -> None:
    async def body() -> None:
        log = config.state_dir / "order"
        config.state_dir.mkdir(parents=True, exist_ok=True)
        pod = make_pod(
            "p",
            sh("main", f"echo main >> {log}"),
            initContainers=[sh("one", f"echo one >> {log}"), sh("two", f"echo two >> {log}")],
            restartPolicy="Never",
        )
        rt = await run_pod(config, pod)
        assert rt.phase() == "Succeeded"
        assert log.read_text().split() == ["one", "two", "main"]
        inits = rt.status()["initContainerStatuses"]
        assert [s["state"]["terminated"]["reason"] for s in inits] == ["Completed"] * 2
        await rt.teardown()

    run(body)


def test_failed_init_container_fails_a_never_pod(config: RuntimeConfig) -> None:
    async def body() -> None:
        pod = make_pod(
            "p", sh("main", "exit 0"), initContainers=[sh("init", "exit 2")], restartPolicy="Never"
        )
        rt = await run_pod(config, pod)
        status = rt.status()
        assert status["phase"] == "Failed"
        assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 2
        assert "waiting" in status["containerStatuses"][0]["state"]
        await rt.teardown()

    run(body)


@needs_root
def test_hostname_and_own_hosts_entry(config: RuntimeConfig) -> None:
    async def body() -> None:
        script = "hostname; getent hosts w-0.job.default.svc.cluster.local"
        pod = make_pod("p", sh("main", script), hostname="w-0", subdomain="job")
        pod["spec"]["restartPolicy"] = "Never"
        rt = await run_pod(config, pod)
        lines = read_log(config, rt, "main").splitlines()
        assert lines[0] == "w-0"
        assert lines[1].split()[0] == rt.status()["podIP"]
        assert os.uname().nodename != "w-0"  # the host's own hostname is untouched
        await rt.teardown()

    run(body)


def test_terminal_pod_is_not_restarted(config: RuntimeConfig) -> None:
    async def body() -> None:
        rt = await run_pod(config, make_pod("p", sh("main", "exit 0"), restartPolicy="Never"))
        assert terminal(rt)
        assert container(rt)["restartCount"] == 0
        await rt.teardown()

    run(body)


@needs_root
def test_exec_runs_inside_the_container(config: RuntimeConfig) -> None:
    async def body() -> None:
        workdir = config.state_dir / "work"
        c = sh("main", "exec sleep 300", env=[{"name": "GREETING", "value": "hi"}])
        c["workingDir"] = str(workdir)
        rt = PodRuntime(make_pod("p", c, hostname="w-7"), config, lambda: None)
        rt.start()
        await wait_for(lambda: "running" in container(rt)["state"], what="running")
        argv, env = rt.exec_argv("main", ["sh", "-c", "hostname; pwd; echo $GREETING"])
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
        assert done.stdout.split() == ["w-7", str(workdir), "hi"]
        await rt.teardown()

    run(body)


def test_native_sidecar_runs_beside_main_and_stops_after_it(config: RuntimeConfig) -> None:
    async def body() -> None:
        marker = config.state_dir / "sidecar-was-up"
        config.state_dir.mkdir(parents=True, exist_ok=True)
        sidecar = sh("shipper", f"touch {marker}; exec sleep 300", restartPolicy="Always")
        main = sh("main", f"test -f {marker} && echo saw-sidecar")
        pod = make_pod(
            "p",
            main,
            initContainers=[sidecar],
            restartPolicy="Never",
            terminationGracePeriodSeconds=5,
        )
        rt = await run_pod(config, pod)
        status = rt.status()
        assert status["phase"] == "Succeeded"
        assert read_log(config, rt, "main").strip() == "saw-sidecar"
        side = status["initContainerStatuses"][0]["state"]["terminated"]
        assert side["exitCode"] == 128 + signal.SIGTERM  # stopped once main was done
        assert container(rt)["state"]["terminated"]["exitCode"] == 0
        await rt.teardown()

    run(body)


@needs_root
def test_memory_limit_is_enforced_and_reported_as_oom_killed(config: RuntimeConfig) -> None:
    memory = MemoryController.detect()
    if memory is None:
        pytest.skip("no writable memory cgroup controller on this host")
    config.memory = memory
    hog = "x = bytearray(400 * 2**20); x[::4096] = b'a' * len(x[::4096]); print('survived')"
    small: dict[str, Any] = {"name": "hog", "image": "python:3.11"}
    small["command"] = ["python3", "-c", hog]
    small["resources"] = {"limits": {"memory": "64Mi"}}
    roomy = {**small, "name": "roomy", "resources": {"limits": {"memory": "1Gi"}}}

    async def body() -> None:
        rt = await run_pod(config, make_pod("p", small, roomy, restartPolicy="Never"), 60)
        term = container(rt, "hog")["state"]["terminated"]
        assert (term["exitCode"], term["reason"]) == (137, "OOMKilled")
        assert container(rt, "roomy")["state"]["terminated"]["reason"] == "Completed"
        assert read_log(config, rt, "roomy").strip() == "survived"
        hog_id = term["containerID"].removeprefix("sandbox://")
        assert not (memory.root / f"elastrain.{config.owner}.{hog_id}").exists()  # removed
        await rt.teardown()

    run(body)


def test_host_network_pod_has_the_node_address(config: RuntimeConfig) -> None:
    async def body() -> None:
        env = [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
        c = sh("main", "echo $IP; hostname", env=env)
        rt = await run_pod(config, make_pod("p", c, hostNetwork=True, restartPolicy="Never"))
        status = rt.status()
        assert status["podIP"] == status["hostIP"]
        lines = read_log(config, rt, "main").split()
        assert lines[0] == status["hostIP"]
        if IS_ROOT:  # its own UTS namespace carries the node's name
            assert lines[1] == "node-1"
        await rt.teardown()

    run(body)


@needs_root
def test_an_impossible_mount_point_is_a_create_container_error(config: RuntimeConfig) -> None:
    async def body() -> None:
        c = sh("main", "true", volumeMounts=[{"name": "d", "mountPath": "/proc/no/such/dir"}])
        pod = make_pod("p", c, volumes=[{"name": "d", "emptyDir": {}}])
        rt = PodRuntime(pod, config, lambda: None)
        rt.start()

        def waiting() -> dict[str, Any]:
            return dict(container(rt)["state"].get("waiting") or {})

        await wait_for(lambda: waiting().get("reason") == "CreateContainerError", what="error")
        assert "/proc/no" in waiting()["message"]
        await rt.teardown()

    run(body)


@needs_root
def test_termination_message_file_becomes_the_message(config: RuntimeConfig) -> None:
    async def body() -> None:
        c = sh("main", "echo 'dataset missing' > /dev/termination-log; exit 3")
        rt = await run_pod(config, make_pod("p", c, restartPolicy="Never"))
        assert container(rt)["state"]["terminated"]["message"] == "dataset missing\n"
        await rt.teardown()

    run(body)


def test_fallback_to_logs_on_error_takes_the_log_tail(config: RuntimeConfig) -> None:
    async def body() -> None:
        script = "for i in $(seq 1 100); do echo line-$i; done; exit 1"
        c = sh("main", script, terminationMessagePolicy="FallbackToLogsOnError")
        ok = sh("fine", "echo all good", terminationMessagePolicy="FallbackToLogsOnError")
        rt = await run_pod(config, make_pod("p", c, ok, restartPolicy="Never"))
        lines = container(rt, "main")["state"]["terminated"]["message"].splitlines()
        assert lines == [f"line-{i}" for i in range(21, 101)]  # the last 80 lines
        assert "message" not in container(rt, "fine")["state"]["terminated"]  # success: none
        await rt.teardown()

    run(body)


def test_pre_stop_hook_runs_before_sigterm(config: RuntimeConfig) -> None:
    async def body() -> None:
        flag = config.state_dir / "pre-stop-ran"
        config.state_dir.mkdir(parents=True, exist_ok=True)
        script = (
            f"trap 'test -f {flag} && echo hook-first; exit 0' TERM; echo up; "
            "while true; do sleep 0.05; done"
        )
        hook = {"preStop": {"exec": {"command": ["touch", str(flag)]}}}
        rt = PodRuntime(make_pod("p", sh("main", script, lifecycle=hook)), config, lambda: None)
        rt.start()
        await wait_for(lambda: "up" in read_log(config, rt, "main"), what="container up")
        await rt.stop(grace=20)
        assert read_log(config, rt, "main").split()[-1] == "hook-first"
        assert container(rt)["state"]["terminated"]["exitCode"] == 0
        await rt.teardown()

    run(body)


def test_post_start_hook_runs_and_a_failing_one_kills_the_container(
    config: RuntimeConfig,
) -> None:
    async def body() -> None:
        flag = config.state_dir / "post-started"
        config.state_dir.mkdir(parents=True, exist_ok=True)
        good = sh(
            "good",
            f"until [ -f {flag} ]; do sleep 0.05; done; echo hooked",
            lifecycle={"postStart": {"exec": {"command": ["touch", str(flag)]}}},
        )
        bad = sh("bad", "exec sleep 300", lifecycle={"postStart": {"exec": {"command": ["false"]}}})
        pod = make_pod("p", good, bad, restartPolicy="Never", terminationGracePeriodSeconds=1)
        rt = await run_pod(config, pod)
        assert read_log(config, rt, "good").strip() == "hooked"
        assert container(rt, "bad")["state"]["terminated"]["exitCode"] == 128 + signal.SIGTERM
        assert rt.phase() == "Failed"
        await rt.teardown()

    run(body)
