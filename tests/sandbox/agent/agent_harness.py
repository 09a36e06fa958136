"""Helpers shared by the agent's runtime tests: pod builders and polling with deadlines."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

from elastrain_sandbox.agent.launch import log_path
from elastrain_sandbox.agent.pod import PodRuntime, RuntimeConfig
from sandbox_fixtures import IS_ROOT as IS_ROOT  # re-exported for the agent tests
from sandbox_fixtures import ROOT_MARKS as ROOT_MARKS

Json = dict[str, Any]

T = TypeVar("T")


def needs_root(test: T) -> T:
    """Mark a test (function or class) as needing root."""
    marked: Any = test
    for mark in ROOT_MARKS:
        marked = mark(marked)
    return cast(T, marked)


def make_pod(name: str, *containers: Json, namespace: str = "default", **spec: Any) -> Json:
    """A pod object as the API server would hand it to the node (uid, nodeName set)."""
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()), "labels": {}},
        "spec": {"nodeName": "node-1", "containers": list(containers), **spec},
    }


def sh(name: str, script: str, **extra: Any) -> Json:
    """A busybox-like container running ``script`` with ``sh -c``."""
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **extra}


async def wait_for(
    predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def poll_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "it") -> None:
    """Synchronous :func:`wait_for` (killed processes take a moment to vanish)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def terminal(rt: PodRuntime) -> bool:
    """Whether the pod reached Succeeded or Failed."""
    return rt.phase() in ("Succeeded", "Failed")


def container(rt: PodRuntime, name: str | None = None) -> Json:
    """The status entry of container ``name`` (or the first)."""
    statuses: list[Json] = rt.status()["containerStatuses"]
    return next(s for s in statuses if name is None or s["name"] == name)


def read_log(config: RuntimeConfig, rt: PodRuntime, name: str, restart: int = 0) -> str:
    """A container run's log as the API server would serve it."""
    path = log_path(config.state_dir, rt.namespace, rt.name, name, restart)
    return path.read_text() if path.exists() else ""


async def run_pod(config: RuntimeConfig, pod: Json, timeout: float = 20.0) -> PodRuntime:
    """Start ``pod`` and wait until it is terminal (caller tears it down)."""
    rt = PodRuntime(pod, config, lambda: None)
    rt.start()
    await wait_for(lambda: terminal(rt), timeout, f"pod {rt.name} to finish")
    return rt


def run(factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run an async test body on a fresh loop (no pytest-asyncio in this project)."""
    asyncio.run(factory())
