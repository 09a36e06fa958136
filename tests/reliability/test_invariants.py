"""The invariant checker catches each broken rule (hand-made states), and passes a sound one."""

from __future__ import annotations

from typing import Any

from invariants import Invariants, Snapshot

NS = "ns"


def job(name: str = "j", uid: str = "u1", phase: str = "Running", restarts: int = 0) -> Any:
    return {
        "metadata": {"name": name, "namespace": NS, "uid": uid},
        "status": {"phase": phase, "restartCount": restarts},
    }


def pod(
    name: str = "j-worker-0",
    index: int = 0,
    owner: str = "u1",
    phase: str = "Running",
    job_name: str = "j",
    **meta: Any,
) -> Any:
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {
                "elastrain.dev/job-name": job_name,
                "elastrain.dev/replica-type": "worker",
                "elastrain.dev/replica-index": str(index),
            },
            "ownerReferences": [{"kind": "TrainingJob", "uid": owner, "controller": True}],
            **meta,
        },
        "status": {"phase": phase},
    }


def service(owner: str = "u1") -> Any:
    return {
        "metadata": {
            "name": "j",
            "namespace": NS,
            "labels": {"elastrain.dev/job-name": "j"},
            "ownerReferences": [{"kind": "TrainingJob", "uid": owner, "controller": True}],
        }
    }


def test_a_sound_state_passes_every_rule() -> None:
    snap = Snapshot([job()], [pod(), pod("j-worker-1", 1)], [service()])
    checker = Invariants()
    assert checker.check(snap, settled=True) == []
    assert checker.checks > 0


def test_two_live_pods_for_one_slot() -> None:
    snap = Snapshot([job()], [pod(), pod("j-worker-0-copy", 0)], [])
    assert Invariants().check(snap) == ["2 live pods for ('ns', 'j', 'worker', '0')"]
    # One of them on its way out is not a duplicate.
    leaving = pod("j-worker-0-old", 0, deletionTimestamp="2026-01-01T00:00:00Z")
    assert Invariants().check(Snapshot([job()], [pod(), leaving], [])) == []


def test_restart_count_never_falls_and_terminal_stays_terminal() -> None:
    checker = Invariants()
    assert checker.check(Snapshot([job(restarts=2)], [], [])) == []
    assert checker.check(Snapshot([job(restarts=1)], [], [])) == ["ns/j: restartCount fell 2 -> 1"]
    assert checker.check(Snapshot([job(phase="Failed", restarts=2)], [], [])) == []
    assert checker.check(Snapshot([job(phase="Running", restarts=2)], [], [])) == [
        "ns/j: left terminal phase Failed for 'Running'"
    ]
    # A new job of the same name (another uid) starts its own history.
    assert checker.check(Snapshot([job(uid="u2", phase="Running")], [], [])) == []


def test_settled_rules() -> None:
    def settled(jobs: Any, pods: Any, services: Any = ()) -> list[str]:
        return Invariants().check(Snapshot(list(jobs), list(pods), list(services)), settled=True)

    assert settled([], [pod()], [service()]) == [
        "pod ns/j-worker-0: orphaned (job 'j' alive: False)",
        "service ns/j: orphaned (job 'j' alive: False)",
    ]
    # Owned by an earlier job of the same name: still an orphan.
    assert settled([job(uid="u2")], [pod(owner="u1")]) == [
        "pod ns/j-worker-0: orphaned (job 'j' alive: True)",
        "ns/j: Running without a running pod",
    ]
    assert settled([job(phase="Succeeded")], [pod()]) == [
        "ns/j: Succeeded with 1 running or pending pods"
    ]
    assert settled([job(phase="Suspended")], [pod(phase="Pending")]) == [
        "ns/j: Suspended with 1 running or pending pods"
    ]
    # Finished pods kept for their logs are fine.
    assert settled([job(phase="Failed")], [pod(phase="Failed")]) == []
    stuck = job()
    stuck["metadata"] |= {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x/y"]}
    assert settled([stuck], [pod()]) == ["ns/j: stuck deleting, finalizers ['x/y']"]
