"""The restricted Pod Security Standard as the default of every pod the operator creates.

A training image rarely needs root, and a pod that runs as root on a shared GPU node is one
container escape from every other team's data. So each field the ``restricted`` profile asks
for is filled in where the template leaves it unset, and a template that sets a field keeps
its value: the user's word always wins, and a namespace's Pod Security admission then decides.

* pod: ``runAsNonRoot: true`` and ``seccompProfile: RuntimeDefault``;
* every container and init container: ``allowPrivilegeEscalation: false`` and
  ``capabilities: {drop: [ALL]}``.

Opting out takes one field: ``runAsNonRoot: false`` (or ``runAsUser: 0``) on the pod or a
container keeps ``runAsNonRoot`` off the whole pod, and ``privileged: true`` or a
``capabilities`` section on a container keeps the container defaults off that container (the
API server refuses ``privileged`` with ``allowPrivilegeEscalation: false``). An image whose user
is root fails under the default with the kubelet's ``CreateContainerConfigError``, which the
job's ``Running`` condition quotes; docs/operator.md says how to opt out.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
CONTAINER_LISTS = ("initContainers", "containers")


def harden(pod_spec: Obj) -> Obj:
    """``pod_spec`` with the restricted defaults filled in (a new dict; the input is kept)."""
    spec = dict(pod_spec)
    pod_sc = dict(spec.get("securityContext") or {})
    containers = [c for key in CONTAINER_LISTS for c in spec.get(key) or [] if isinstance(c, dict)]
    if not _asks_for_root(pod_sc, containers):
        pod_sc.setdefault("runAsNonRoot", True)
    pod_sc.setdefault("seccompProfile", {"type": "RuntimeDefault"})
    spec["securityContext"] = pod_sc
    for key in CONTAINER_LISTS:
        if spec.get(key):
            spec[key] = [_harden_container(c) if isinstance(c, dict) else c for c in spec[key]]
    return spec


def _asks_for_root(pod_sc: Obj, containers: list[Obj]) -> bool:
    """Whether the pod or any container says it runs as root, or that root is allowed."""
    contexts = [pod_sc, *(c.get("securityContext") or {} for c in containers)]
    return any(
        isinstance(sc, dict) and (sc.get("runAsNonRoot") is False or sc.get("runAsUser") == 0)
        for sc in contexts
    )


def _harden_container(container: Obj) -> Obj:
    sc = dict(container.get("securityContext") or {})
    if sc.get("privileged") is True or "capabilities" in sc:
        return container
    sc.setdefault("allowPrivilegeEscalation", False)
    sc["capabilities"] = {"drop": ["ALL"]}
    return {**container, "securityContext": sc}
