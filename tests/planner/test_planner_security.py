"""Pods are built with the restricted Pod Security Standard's fields wherever the template
leaves them unset, and a template's own choice always wins."""

from __future__ import annotations

from typing import Any

import pytest
from elastrain.planner.security import harden

Obj = dict[str, Any]


def spec(pod_sc: Obj | None = None, **container_sc: Any) -> Obj:
    container: Obj = {"name": "main", "image": "trainer"}
    if container_sc:
        container["securityContext"] = container_sc
    out: Obj = {"containers": [container], "initContainers": [{"name": "init", "image": "x"}]}
    if pod_sc is not None:
        out["securityContext"] = pod_sc
    return out


def test_an_empty_template_gets_the_restricted_profile() -> None:
    hardened = harden(spec())
    assert hardened["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in (*hardened["containers"], *hardened["initContainers"]):
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }


def test_the_input_is_not_changed() -> None:
    template = spec()
    harden(template)
    assert template == spec()


@pytest.mark.parametrize(
    ("pod_sc", "container_sc"),
    [
        ({"runAsNonRoot": False}, {}),
        ({"runAsUser": 0}, {}),
        ({}, {"runAsUser": 0}),
        ({}, {"runAsNonRoot": False}),
    ],
)
def test_asking_for_root_anywhere_keeps_run_as_non_root_off(pod_sc: Obj, container_sc: Obj) -> None:
    hardened = harden(spec(pod_sc, **container_sc))
    assert hardened["securityContext"].get("runAsNonRoot") is not True
    assert hardened["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_set_fields_are_kept() -> None:
    pod_sc = {"runAsUser": 1000, "seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}
    hardened = harden(spec(pod_sc, allowPrivilegeEscalation=True))
    assert hardened["securityContext"] == {**pod_sc, "runAsNonRoot": True}
    assert hardened["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": True,
        "capabilities": {"drop": ["ALL"]},
    }


@pytest.mark.parametrize(
    "container_sc",
    [{"privileged": True}, {"capabilities": {"add": ["SYS_PTRACE"]}}],
)
def test_privileged_or_own_capabilities_keep_the_container_as_written(container_sc: Obj) -> None:
    hardened = harden(spec(**container_sc))
    assert hardened["containers"][0]["securityContext"] == container_sc
