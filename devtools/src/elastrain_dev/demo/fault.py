"""The demo's fault: SIGKILL the training process of one worker pod, as a crash or OOM kill would.

Only the training process dies, not the pod's main process when torchrun is the launcher, so
what follows is the product's own recovery path: torchrun's agent (or the operator, when the
trainer is the pod's main process) restarts it, and the trainer resumes from its checkpoint.

On the sandbox the pod's processes are found on the host through the marker variable the node
agent puts in every container's environment (the pod's ``containerID``); on a real cluster the
same selection runs inside the pod with ``kubectl exec``.
"""

from __future__ import annotations

import inspect
import os
import signal
from collections.abc import Sequence
from typing import Any

from elastrain_sandbox.agent.container import processes_with_marker

from elastrain_dev.demo.kubectl import Kubectl

# A process is a training process when its command line runs the trainer and it is not
# torchrun's agent, whose own command line names the trainer as the script to launch.
TRAINER_MARKERS = ("elastrain-train", "elastrain_trainer")
LAUNCHER_MARKERS = ("torchrun", "torch.distributed.run", "torch.distributed.launch")


class FaultError(RuntimeError):
    """The fault could not be injected (no such pod, no training process in it)."""


def is_training_process(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is a trainer process rather than its launcher or anything else."""
    text = " ".join(argv)
    return any(m in text for m in TRAINER_MARKERS) and not any(m in text for m in LAUNCHER_MARKERS)


def _argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def marker_id(container_id: str) -> str:
    """Kubernetes spells a container ID ``<runtime>://<id>``; the agent's marker holds the id."""
    return container_id.split("://", 1)[-1]


def _container_id(pod: dict[str, Any]) -> str:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    running = [s for s in statuses if "running" in (s.get("state") or {}) and s.get("containerID")]
    if not running:
        raise FaultError(f"pod {pod['metadata']['name']} has no running container")
    return marker_id(str(running[0]["containerID"]))


def kill_on_sandbox(pod: dict[str, Any]) -> list[int]:
    """SIGKILL the training processes of ``pod`` on this host; return their pids."""
    container = _container_id(pod)
    victims = [pid for pid in processes_with_marker(container) if is_training_process(_argv(pid))]
    if not victims:
        raise FaultError(f"no training process found in pod {pod['metadata']['name']}")
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    return victims


# Runs inside the pod (the image has Python but not this package), so the selection logic is
# shipped as source: the very function above, not a copy of it.
_REMOTE_SCRIPT = f"""
from __future__ import annotations
import os, signal
TRAINER_MARKERS = {TRAINER_MARKERS!r}
LAUNCHER_MARKERS = {LAUNCHER_MARKERS!r}
{inspect.getsource(is_training_process)}
killed = []
for name in os.listdir("/proc"):
    if not name.isdigit() or int(name) == os.getpid():
        continue
    try:
        with open("/proc/%s/cmdline" % name, "rb") as handle:
            argv = handle.read().decode(errors="replace").split("\\0")
    except OSError:
        continue
    if is_training_process(argv):
        os.kill(int(name), signal.SIGKILL)
        killed.append(name)
print(" ".join(killed))
"""


def kill_in_cluster(kubectl: Kubectl, pod_name: str) -> list[int]:
    """SIGKILL the training processes of ``pod_name`` from inside it (``kubectl exec``)."""
    output = kubectl.run("exec", pod_name, "--", "python", "-c", _REMOTE_SCRIPT)
    victims = [int(pid) for pid in output.split()]
    if not victims:
        raise FaultError(f"no training process found in pod {pod_name}")
    return victims
