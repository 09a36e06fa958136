"""Pure parts of the agent: env expansion, downward API, hosts content, back-off, phase rules."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from elastrain_sandbox.agent import hosts
from elastrain_sandbox.agent.backoff import Backoff, BackoffPolicy
from elastrain_sandbox.agent.envvars import ConfigError, command_line, container_env, expand
from elastrain_sandbox.agent.images import ImageMap, repository
from elastrain_sandbox.agent.podstatus import ContainerRecord, Terminated, pod_phase


def pod(name: str, ip: str | None = None, **spec: Any) -> dict[str, Any]:
    labels = spec.pop("labels", {})
    ready = spec.pop("ready", True)
    status: dict[str, Any] = {"phase": "Running"}
    if ip:
        status["podIP"] = ip
    status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    meta = {"name": name, "namespace": "ns", "uid": name, "labels": labels}
    return {"metadata": meta, "spec": spec, "status": status}


def headless(name: str, selector: dict[str, str], not_ready: bool = False) -> dict[str, Any]:
    spec = {"clusterIP": "None", "selector": selector, "publishNotReadyAddresses": not_ready}
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$$(A) $(MISSING) $", env) == "$(A) $(MISSING) $"


def test_env_values_expand_against_earlier_entries_only() -> None:
    c = {
        "env": [
            {"name": "X", "value": "$(Y)"},
            {"name": "Y", "value": "y"},
            {"name": "Z", "value": "$(Y)"},
        ]
    }
    env = container_env({"metadata": {"name": "p"}}, c, pod_ip="", host_ip="", base={})
    assert (env["X"], env["Z"]) == ("$(Y)", "y")


def test_config_map_and_secret_refs_go_through_the_lookup() -> None:
    objects = {
        ("ConfigMap", "ns", "cm"): {"data": {"k": "v"}},
        ("Secret", "ns", "s"): {"data": {"pw": base64.b64encode(b"hunter2").decode()}},
    }
    c = {
        "env": [
            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            {"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {
                "name": "O",
                "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}},
            },
        ],
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
    }
    p = {"metadata": {"name": "p", "namespace": "ns"}}
    env = container_env(p, c, pod_ip="", host_ip="", base={}, lookup=lambda *k: objects.get(k))
    assert (env["K"], env["P"], env["CM_k"]) == ("v", "hunter2", "v")
    assert "O" not in env
    missing = {"env": [{"name": "M", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}]}
    with pytest.raises(ConfigError, match="not found"):
        container_env(p, missing, pod_ip="", host_ip="", base={}, lookup=lambda *k: None)


def test_resource_field_ref_rounds_up_by_divisor() -> None:
    c = {
        "resources": {"limits": {"memory": "1Gi", "cpu": "250m"}},
        "env": [
            {
                "name": "M",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {
                "name": "R",
                "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}},
            },
        ],
    }
    env = container_env({"metadata": {"name": "p"}}, c, pod_ip="", host_ip="", base={})
    assert (env["M"], env["C"], env["R"]) == ("1024", "1", "250")
    for bad in (
        {"resource": "limits.cpu", "divisor": "0"},
        {"resource": "limits.cpu", "divisor": "x"},
    ):
        broken = {"env": [{"name": "B", "valueFrom": {"resourceFieldRef": bad}}]}
        with pytest.raises(ConfigError, match="resourceFieldRef"):
            container_env({"metadata": {"name": "p"}}, broken, pod_ip="", host_ip="", base={})


def test_command_line_uses_the_image_default_and_expands() -> None:
    assert command_line({"args": ["--x=$(A)"]}, {"A": "1"}, ["elastrain-train"]) == [
        "elastrain-train",
        "--x=1",
    ]
    with pytest.raises(ConfigError, match="set `command`"):
        command_line({"image": "x"}, {}, [])


def test_image_repository_and_mapping() -> None:
    assert (
        repository("reg:5000/org/elastrain/trainer:1.0@sha256:ab")
        == "reg:5000/org/elastrain/trainer"
    )
    images = ImageMap.default()
    assert images.runtime("elastrain/trainer:dev").entrypoint == ("elastrain-train",)
    assert images.runtime("docker.io/library/busybox:1.36").entrypoint == ("sh",)
    assert images.runtime("example.com/unknown").entrypoint == ()


def test_hosts_entries_for_subdomain_peers_and_headless_services() -> None:
    me = pod("job-worker-0", hostname="job-worker-0", subdomain="job", labels={"j": "job"})
    peer = pod(
        "job-worker-1",
        "10.0.0.3",
        hostname="job-worker-1",
        subdomain="job",
        labels={"j": "job"},
        ready=False,
    )
    other = pod("x", "10.0.0.9", subdomain="other")
    no_ip = pod("job-worker-2", subdomain="job", labels={"j": "job"})
    svc = headless("job", {"j": "job"}, not_ready=True)
    strict = headless("strict", {"j": "job"})
    entries = hosts.entries_for(me, "10.0.0.2", [me, peer, other, no_ip], [svc, strict])
    names = {name: e.ip for e in entries for name in e.names}
    assert names["job-worker-0"] == names["job-worker-0.job.ns.svc.cluster.local"] == "10.0.0.2"
    assert names["job-worker-1.job"] == "10.0.0.3"
    assert "x" not in names and "job-worker-2" not in names
    svc_ips = sorted(e.ip for e in entries if "job.ns.svc" in e.names)
    assert svc_ips == ["10.0.0.2", "10.0.0.3"]  # publishNotReadyAddresses keeps the not-ready one
    strict_ips = sorted(e.ip for e in entries if "strict" in e.names)
    assert strict_ips == ["10.0.0.2"]  # self counts as ready here (its Ready condition is True)


def test_hosts_write_in_place_keeps_the_inode(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    assert hosts.write_in_place(path, "a\n")
    inode = path.stat().st_ino
    assert hosts.write_in_place(path, "a much longer content\n")
    assert not hosts.write_in_place(path, "a much longer content\n")
    assert path.stat().st_ino == inode
    assert path.read_text() == "a much longer content\n"


def test_backoff_is_immediate_then_doubles_to_the_cap_and_resets() -> None:
    backoff = Backoff(BackoffPolicy(base=10, cap=40, reset_after=600))
    assert [backoff.next_delay(1) for _ in range(5)] == [0, 10, 20, 40, 40]
    assert backoff.next_delay(600) == 0
    assert backoff.next_delay(1) == 10


def _record(state: str, code: int = 0) -> ContainerRecord:
    rec = ContainerRecord("c", "img")
    if state == "running":
        rec.set_running("id", 1.0)
    elif state == "terminated":
        rec.set_terminated(Terminated(code, 1.0, 2.0, "id"))
    elif state == "backoff":
        rec.set_terminated(Terminated(code, 1.0, 2.0, "id"))
        rec.set_waiting("CrashLoopBackOff")
    return rec


@pytest.mark.parametrize(
    ("states", "policy", "phase"),
    [
        ([("waiting", 0), ("running", 0)], "Always", "Pending"),
        ([("running", 0), ("terminated", 0)], "Never", "Running"),
        ([("terminated", 0), ("terminated", 0)], "Never", "Succeeded"),
        ([("terminated", 0), ("terminated", 1)], "Never", "Failed"),
        ([("terminated", 0), ("backoff", 1)], "OnFailure", "Running"),
        ([("terminated", 0)], "OnFailure", "Succeeded"),
        ([("backoff", 1)], "Always", "Running"),
    ],
)
def test_phase_rules_match_the_kubelet(
    states: list[tuple[str, int]], policy: str, phase: str
) -> None:
    assert pod_phase([_record(s, code) for s, code in states], policy) == phase
