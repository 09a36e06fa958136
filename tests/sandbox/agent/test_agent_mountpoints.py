"""Mount points created on the host go away with the last pod that used them.

Every path here is fresh (``/etr-<random>``), so parallel runs and other tests never share one
by accident, and every test removes what it made itself even when it fails.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import (
    container,
    make_pod,
    needs_root,
    run,
    run_pod,
    sh,
    wait_for,
)
from elastrain_sandbox.agent import NodeAgent, mountpoints
from elastrain_sandbox.agent.instance import (
    InstanceId,
    host_lock,
    remove_runtime_dir_if_idle,
    runtime_dir,
)
from elastrain_sandbox.agent.pod import PodRuntime, RuntimeConfig
from elastrain_sandbox.apiserver.store import Store


@pytest.fixture
def fresh() -> Iterator[list[Path]]:
    """Hands out ``/etr-<random>`` paths (not created) and removes what is left of them."""
    made: list[Path] = []
    yield made
    for path in made:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


def new_path(made: list[Path]) -> Path:
    path = Path(f"/etr-{uuid.uuid4().hex[:12]}")
    assert not path.exists()
    made.append(path)
    return path


def dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def recorded() -> set[str]:
    """Paths in the host-wide record right now."""
    with host_lock() as directory:
        return set(mountpoints._load(directory))


@needs_root
def test_created_mount_points_parents_workdir_and_termination_file_go_with_the_pod(
    config: RuntimeConfig, fresh: list[Path]
) -> None:
    top, work, term = new_path(fresh), new_path(fresh), new_path(fresh)
    ckpt = top / "deep" / "ckpt"
    message = term / "msg"

    async def body() -> None:
        script = f"echo hi > {ckpt}/f && pwd > {message} && [ -f {ckpt}/f ]"
        c = sh(
            "main",
            script,
            volumeMounts=[{"name": "d", "mountPath": str(ckpt)}],
            workingDir=str(work / "wd"),
            terminationMessagePath=str(message),
        )
        pod = make_pod("p", c, restartPolicy="Never", volumes=[{"name": "d", "emptyDir": {}}])
        rt = await run_pod(config, pod)
        assert rt.phase() == "Succeeded", container(rt)
        assert container(rt)["state"]["terminated"]["message"] == f"{work}/wd\n"
        # The container wrote into its volume, not onto the host's mount point.
        assert ckpt.is_dir() and not any(ckpt.iterdir())
        assert {str(ckpt), str(top), str(work / "wd"), str(message)} <= recorded()
        await rt.teardown()
        for path in (top, work, term):
            assert not path.exists(), f"{path} left on the host"
        left = [p for p in recorded() for t in (top, work, term) if p.startswith(str(t))]
        assert not left, f"still recorded: {left}"

    run(body)


@needs_root
def test_pre_existing_directories_are_never_removed(
    config: RuntimeConfig, fresh: list[Path]
) -> None:
    existing, parent = new_path(fresh), new_path(fresh)
    existing.mkdir()
    parent.mkdir()
    nested = existing / "nested"  # inside volume "a" once it is mounted: made there
    child = parent / "child"  # created on the host, inside a directory that was there

    async def body() -> None:
        script = f"[ -d {nested} ] && [ -d {child} ] && touch {nested}/x"
        c = sh(
            "main",
            script,
            volumeMounts=[
                {"name": "a", "mountPath": str(existing)},
                {"name": "b", "mountPath": str(nested)},
                {"name": "c", "mountPath": str(child)},
            ],
        )
        vols = [{"name": n, "emptyDir": {}} for n in "abc"]
        rt = await run_pod(config, make_pod("p", c, restartPolicy="Never", volumes=vols))
        assert rt.phase() == "Succeeded", container(rt)
        assert (rt.dir / "volumes" / "b" / "x").exists(), "nested mount not in place"
        assert not nested.exists(), "a nested mount point was made on the host"
        assert child.is_dir()
        await rt.teardown()
        assert existing.is_dir() and parent.is_dir(), "a directory that existed was removed"
        assert not child.exists(), "the mount point created inside it was left"

    run(body)


@needs_root
def test_content_put_into_a_created_mount_point_is_kept(fresh: list[Path]) -> None:
    top = new_path(fresh)
    holder = mountpoints.holder_key("", "uid-content")
    mountpoints.claim(holder, str(top / "file"), directory=False)
    (top / "file").write_text("someone else's")
    assert mountpoints.release(holder) == []
    assert (top / "file").read_text() == "someone else's"
    assert str(top) not in recorded() and str(top / "file") not in recorded()


@needs_root
def test_shared_mount_point_stays_until_the_last_pod_is_gone(
    config: RuntimeConfig, fresh: list[Path]
) -> None:
    shared = new_path(fresh) / "shared"
    # The second pod belongs to another agent instance, as in a parallel test run.
    other = dataclasses.replace(config, owner=InstanceId.new().tag)

    async def body() -> None:
        mount = [{"name": "d", "mountPath": str(shared)}]
        vols = [{"name": "d", "emptyDir": {}}]
        waiter = sh("main", f"until [ -f {shared}/go ]; do sleep 0.05; done", volumeMounts=mount)
        long = PodRuntime(
            make_pod("long", waiter, restartPolicy="Never", volumes=vols), config, lambda: None
        )
        long.start()
        try:
            await wait_for(lambda: "running" in container(long)["state"], what="long running")
            short = await run_pod(
                other,
                make_pod(
                    "short",
                    sh("main", "true", volumeMounts=mount),
                    restartPolicy="Never",
                    volumes=vols,
                ),
            )
            assert short.phase() == "Succeeded", container(short)
            await short.teardown()
            assert shared.is_dir(), "removed while another pod still uses it"
            # The long pod's mount is still attached: it sees a file put into its volume.
            (long.dir / "volumes" / "d" / "go").touch()
            await wait_for(lambda: long.phase() == "Succeeded", what="long pod to see its file")
        finally:
            await long.teardown()
        assert not shared.parent.exists(), "left after the last pod went"

    run(body)


@needs_root
def test_agent_start_removes_mount_points_of_a_dead_agent(
    tmp_path: Path, fresh: list[Path]
) -> None:
    dead = InstanceId(dead_pid(), 0).tag
    alive = InstanceId.new().tag
    gone, kept = new_path(fresh), new_path(fresh)
    mountpoints.claim(f"{dead}:uid-1", str(gone / "ckpt"), directory=True)
    mountpoints.claim(f"{dead}:uid-1", str(kept / "data"), directory=True)
    mountpoints.claim(f"{alive}:uid-2", str(kept / "data"), directory=True)
    assert (gone / "ckpt").is_dir()

    async def body() -> None:
        agent = NodeAgent(Store(), tmp_path / "state")
        await agent.start()
        try:
            assert not gone.exists(), "a dead agent's mount point survived the start sweep"
            assert (kept / "data").is_dir(), "removed while a live agent holds it"
        finally:
            await agent.stop()

    try:
        run(body)
    finally:
        mountpoints.release_owner(alive)
    assert not kept.exists()


def test_runtime_dir_is_removed_once_idle_and_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    monkeypatch.setenv("ELASTRAIN_SANDBOX_RUNTIME_DIR", str(run_dir))
    assert runtime_dir() == run_dir
    target = tmp_path / "host" / "mnt"
    mountpoints.claim("0000001:a", str(target), directory=True)
    assert not remove_runtime_dir_if_idle()
    assert (run_dir / mountpoints.RECORD).exists()
    mountpoints.release("0000001:a")
    assert not (tmp_path / "host").exists()
    assert remove_runtime_dir_if_idle()
    assert not run_dir.exists()
    with host_lock() as directory:  # a later claim simply makes it again
        assert directory == run_dir and (run_dir / "lock").exists()


def test_a_lock_waiter_on_a_removed_lock_file_starts_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The removal race: a process that opened the old lock file must not count as holding
    the lock once the file is gone, or two processes could hold it at once."""
    run_dir = tmp_path / "run"
    monkeypatch.setenv("ELASTRAIN_SANDBOX_RUNTIME_DIR", str(run_dir))
    with host_lock():
        script = (
            "from elastrain_sandbox.agent.instance import host_lock\n"
            "with host_lock() as d:\n"
            "    print((d / 'lock').exists(), flush=True)\n"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "ELASTRAIN_SANDBOX_RUNTIME_DIR": str(run_dir)},
        )
        # Wait until the child has the old file open (it then blocks on the lock).
        wait_deadline_open(child.pid, run_dir / "lock")
        (run_dir / "lock").unlink()
        run_dir.rmdir()
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert out.split() == ["True"], "the waiter took the lock on the removed lock file"


def wait_deadline_open(pid: int, path: Path) -> None:
    """Poll (with a deadline) until process ``pid`` has ``path`` open."""
    target = os.stat(path).st_ino
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.stat(f"/proc/{pid}/fd/{fd}").st_ino == target:
                        return
                except OSError:
                    continue
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never opened {path}")
