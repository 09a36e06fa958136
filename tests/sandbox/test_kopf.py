"""kopf, unmodified, against the sandbox: create/update/delete handlers with its finalizer.

kopf adds its finalizer with a JSON patch whose first op tests ``metadata.resourceVersion``
(kopf >= 1.44), stores progress in annotations and relies on watch semantics; every handler
must run exactly once per change. kopf runs as its own process (``kopf run``) with only
``KUBECONFIG`` pointing at the sandbox, exactly as an operator would be started.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from elastrain_sandbox.embedded import Sandbox
from sandbox_fixtures import Kubectl, wait_for

OPERATOR = """
import json, os
import kopf

LOG = os.environ["SANDBOX_KOPF_LOG"]

def _note(kind, name, spec):
    with open(LOG, "a") as f:
        f.write(json.dumps({"kind": kind, "name": name, "spec": dict(spec)}) + "\\n")

@kopf.on.startup()
def configure(settings, **_):
    settings.persistence.finalizer = "example.test/kopf-finalizer"
    prefix = "kopf.example.test"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=prefix)
    settings.watching.server_timeout = 10
    settings.posting.level = 0

@kopf.on.create("example.test", "v1", "widgets")
def created(name, spec, patch, **_):
    _note("create", name, spec)
    patch.status["phase"] = "Created"

@kopf.on.update("example.test", "v1", "widgets")
def updated(name, spec, **_):
    _note("update", name, spec)

@kopf.on.delete("example.test", "v1", "widgets")
def deleted(name, spec, **_):
    _note("delete", name, spec)
"""


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(nodes=1, state_dir=tmp_path / "sb", agent=False) as box:
        yield box


def _calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_kopf_operator_handles_create_update_delete_once(
    sb: Sandbox, tmp_path: Path, widget_crd: str, widget: Callable[..., str]
) -> None:
    k = Kubectl(sb)
    k("apply", "-f", "-", input=widget_crd)
    log = tmp_path / "calls.jsonl"
    op = tmp_path / "operator.py"
    op.write_text(OPERATOR)
    env = {**os.environ, "KUBECONFIG": str(sb.kubeconfig_path), "SANDBOX_KOPF_LOG": str(log)}
    out = (tmp_path / "kopf.out").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kopf", "run", "--standalone", "-A", "--verbose", str(op)],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        k("apply", "-f", "-", input=widget("w1", replicas=1))
        wait_for(
            lambda: [c for c in _calls(log) if c["kind"] == "create"],
            timeout=60,
            what="create handler",
        )
        obj = wait_for(
            lambda: (
                (o := json.loads(k("get", "wd", "w1", "-o", "json").stdout))
                .get("status", {})
                .get("phase")
                and o
            ),
            what="status written by the handler",
        )
        assert obj["status"]["phase"] == "Created"
        assert "example.test/kopf-finalizer" in obj["metadata"]["finalizers"]
        k("patch", "wd", "w1", "--type=merge", "-p", '{"spec":{"replicas":3}}')
        wait_for(lambda: [c for c in _calls(log) if c["kind"] == "update"], what="update handler")
        k("delete", "wd", "w1", "--timeout=30s")  # returns once kopf released its finalizer
        wait_for(lambda: [c for c in _calls(log) if c["kind"] == "delete"], what="delete handler")
        # A later object's whole cycle is a barrier: any duplicate run of w1 would be in by then.
        k("apply", "-f", "-", input=widget("barrier", replicas=1))
        wait_for(lambda: [c for c in _calls(log) if c["name"] == "barrier"], what="barrier handled")
        wait_for(
            lambda: (
                "example.test/kopf-finalizer"
                in k("get", "wd", "barrier", "-o", "jsonpath={.metadata.finalizers}").stdout
            ),
            what="barrier finalizer",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        out.close()
        k.close()
    output = (tmp_path / "kopf.out").read_text()
    counts = Counter((c["kind"], c["name"]) for c in _calls(log))
    assert counts == Counter(
        {("create", "w1"): 1, ("update", "w1"): 1, ("delete", "w1"): 1, ("create", "barrier"): 1}
    ), output
    assert [c["spec"]["replicas"] for c in _calls(log) if c["kind"] == "update"] == [3]
    assert "Traceback" not in output, output
    # Log timestamps carry milliseconds (",422]"), so look for 422 only in the messages.
    messages = re.sub(r"^\[[^\]]*\]", "", output, flags=re.MULTILINE)
    assert "422" not in messages and "APIClientError" not in output, output
