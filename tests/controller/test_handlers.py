"""The kopf handlers, called directly as kopf would call them, over a Runtime built by app.start.

The Runtime is the production one (real queue, expectations, metrics, workers) around a fake
API server; the startup and cleanup handlers are run too, against a kubeconfig on disk.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import kopf
import pytest
from controller_rig import KEY, NS, child, make_job
from elastrain.api.kinds import CHILD_KINDS, POD_GROUP
from elastrain.controller import app
from elastrain.controller import handlers as kopf_handlers
from elastrain.controller import settings as operator_settings
from elastrain.controller.config import OperatorConfig
from elastrain.controller.store import Store
from elastrain.kube.client import Kube
from elastrain_sandbox.ports import free_port
from fake_kube import FakeKube
from kubernetes.config import ConfigException, kube_config

# kopf's decorators type each handler as kopf's callback protocol, which names every keyword
# kopf passes; the tests call a handler with the few it reads, as kopf's own tests do.
handlers: Any = kopf_handlers


def as_body(obj: dict[str, Any]) -> kopf.Body:
    """A watch event's body, as kopf hands it to a handler."""
    return kopf.Body(cast(kopf.RawBody, obj))


CONFIG = OperatorConfig(metrics_port=0, workers=1)


def with_runtime(
    scenario: Callable[[app.Runtime, kopf.Memo, FakeKube], Awaitable[None]],
    jobs: dict[Any, list[dict[str, Any]]] | None = None,
) -> None:
    """Run ``scenario`` with a started Runtime in kopf's memo; stop it afterwards."""

    async def main() -> None:
        kube = FakeKube()
        rt = app.start(CONFIG, Store(jobs or {}, {}, {}, {}), kube=kube)  # type: ignore[arg-type]
        try:
            await scenario(rt, kopf.Memo(runtime=rt), kube)
        finally:
            await rt.stop()
        assert kube.closed

    asyncio.run(main())


def queued(rt: app.Runtime) -> int:
    return len(rt.queue)


def test_job_events_enqueue_the_job_and_track_its_phase() -> None:
    async def scenario(rt: app.Runtime, memo: kopf.Memo, kube: FakeKube) -> None:
        await rt.workers.stop()  # keep the queue still: this test looks at it
        job = make_job(status={"phase": "Running"})
        await handlers.job_event(event={"type": "ADDED"}, body=as_body(job), memo=memo)
        await handlers.job_event(event={"type": "MODIFIED"}, body=as_body(job), memo=memo)
        assert queued(rt) == 1  # deduplicated
        phase = {"phase": "Running"}
        assert rt.metrics.registry.get_sample_value("elastrain_jobs", phase) == 1
        # Our status write against resourceVersion 7 is ticked off by any other version.
        rt.expectations.expect_status(KEY, "7")
        job["metadata"]["resourceVersion"] = "8"
        await handlers.job_event(event={"type": "MODIFIED"}, body=as_body(job), memo=memo)
        assert rt.expectations.unmet(KEY) is None
        rt.expectations.expect_creates(KEY, [("Pod", "mnist-worker-0")])
        await handlers.job_event(event={"type": "DELETED"}, body=as_body(job), memo=memo)
        assert rt.metrics.registry.get_sample_value("elastrain_jobs", phase) == 0
        assert rt.expectations.unmet(KEY) is None  # forgotten with the job

    with_runtime(scenario)


def test_a_new_job_counts_as_new() -> None:
    async def scenario(rt: app.Runtime, memo: kopf.Memo, kube: FakeKube) -> None:
        await handlers.job_event(event={"type": "ADDED"}, body=as_body(make_job()), memo=memo)
        assert rt.metrics.registry.get_sample_value("elastrain_jobs", {"phase": "New"}) == 1

    with_runtime(scenario)


def test_child_events_enqueue_their_job_and_tick_off_our_writes() -> None:
    async def scenario(rt: app.Runtime, memo: kopf.Memo, kube: FakeKube) -> None:
        await rt.workers.stop()
        rt.expectations.expect_creates(KEY, [("Pod", "mnist-worker-0")])
        pod = as_body(child("Pod", "mnist-worker-0", "uid-0"))
        await handlers.child_event(event={"type": "ADDED"}, body=pod, memo=memo)
        assert queued(rt) == 1
        assert rt.expectations.unmet(KEY) is None

    with_runtime(scenario)


def test_a_strangers_pod_is_no_child() -> None:
    stranger = child("Pod", "mnist-worker-0", "uid-0")
    stranger["metadata"]["ownerReferences"][0]["kind"] = "Job"  # copies our label, not ours

    async def scenario(rt: app.Runtime, memo: kopf.Memo, kube: FakeKube) -> None:
        await rt.workers.stop()
        await handlers.child_event(event={"type": "ADDED"}, body=as_body(stranger), memo=memo)
        assert queued(rt) == 0

    with_runtime(scenario)
    assert not handlers.is_child(as_body(stranger))
    assert handlers.is_child(as_body(child("Service", "mnist", "uid-s")))


def test_child_index_keys_children_by_their_job_without_managed_fields() -> None:
    pod = child("Pod", "mnist-worker-0", "uid-0")
    pod["metadata"]["managedFields"] = [{"manager": "kubelet"}]
    indexed = asyncio.run(handlers.child_index(body=as_body(pod)))
    assert list(indexed) == [KEY]
    assert "managedFields" not in indexed[KEY]["metadata"]
    assert "managedFields" in pod["metadata"]  # the watched object itself is left alone
    jobs = asyncio.run(handlers.elastrain_jobs(body=as_body(make_job())))
    assert list(jobs) == [KEY]


def test_the_podgroup_crd_appearing_replans_every_job() -> None:
    other = make_job()
    other["metadata"]["name"] = "other"
    jobs = {KEY: [make_job()], (NS, "other"): [other]}

    async def scenario(rt: app.Runtime, memo: kopf.Memo, kube: FakeKube) -> None:
        await rt.workers.stop()
        assert await rt.pod_groups.served() is False
        kube.served[POD_GROUP.api_prefix] = [POD_GROUP.plural]
        assert await rt.pod_groups.served() is False  # cached for a minute...
        await handlers.podgroup_crd(event={"type": "ADDED"}, memo=memo)
        assert await rt.pod_groups.served() is True  # ...unless the CRD's event says otherwise
        assert queued(rt) == 2

    with_runtime(scenario, jobs)
    assert handlers.is_pod_group_crd("podgroups.scheduling.x-k8s.io")
    assert not handlers.is_pod_group_crd("trainingjobs.elastrain.dev")


def test_a_podgroup_crd_not_yet_in_discovery_is_asked_after_until_it_is() -> None:
    """A real kube-apiserver serves a new CRD's group a moment after the CRD's events (found
    by the gang test on the real control plane): the handler keeps asking, then re-plans."""

    async def scenario(rt: app.Runtime, memo: kopf.Memo, kube: FakeKube) -> None:
        await rt.workers.stop()

        async def serve_later() -> None:
            await asyncio.sleep(0.3)
            kube.served[POD_GROUP.api_prefix] = [POD_GROUP.plural]

        later = asyncio.create_task(serve_later())
        await handlers.podgroup_crd(event={"type": "ADDED"}, memo=memo)
        await later
        assert await rt.pod_groups.served() is True
        assert queued(rt) == 1

    with_runtime(scenario, {KEY: [make_job()]})


def test_the_runtime_reconciles_what_the_handlers_enqueue() -> None:
    async def scenario(rt: app.Runtime, memo: kopf.Memo, kube: FakeKube) -> None:
        await handlers.job_event(event={"type": "ADDED"}, body=as_body(make_job()), memo=memo)
        deadline = asyncio.get_running_loop().time() + 20
        while "POST pods mnist-worker-1" not in kube.log():
            assert asyncio.get_running_loop().time() < deadline, kube.log()
            await asyncio.sleep(0.01)

    with_runtime(scenario, {KEY: [make_job()]})


def test_a_handler_before_startup_says_so() -> None:
    with pytest.raises(RuntimeError, match="startup"):
        asyncio.run(handlers.podgroup_crd(event={"type": "ADDED"}, memo=kopf.Memo()))


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def use_kubeconfig(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Point the client's kubectl-like loading at ``path`` (not in a pod, no ~/.kube)."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    # The client reads $KUBECONFIG once, at import; this is where it keeps the answer.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def index_kwargs() -> dict[str, Any]:
    """The indexes, as kopf passes them to every handler: by index id."""
    kwargs: dict[str, Any] = {handlers.JOBS_INDEX: {}}
    kwargs.update({handlers.child_index_id(kind): {} for kind in CHILD_KINDS})
    return kwargs


def test_startup_configures_kopf_and_builds_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").write_text(KUBECONFIG)
    use_kubeconfig(monkeypatch, tmp_path / "config")
    settings = kopf.OperatorSettings()
    memo = handlers.memo_for(CONFIG)

    async def scenario() -> None:
        await handlers.startup(settings=settings, memo=memo, **index_kwargs())
        rt = handlers.runtime(memo)
        assert isinstance(rt.kube, Kube)
        assert rt.config is CONFIG
        await handlers.cleanup(memo=memo)

    asyncio.run(scenario())
    assert settings.persistence.finalizer == "elastrain.dev/finalizer"
    assert settings.watching.server_timeout == 300
    for kind in CHILD_KINDS:
        assert settings.watching.label_selectors[kind.selector] == "elastrain.dev/job-name"


def test_a_taken_metrics_port_stops_the_operator() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # the metrics server's wildcard bind collides with it
        taken.listen()
        port = taken.getsockname()[1]
        config = OperatorConfig(metrics_port=port)
        with pytest.raises(kopf.PermanentError, match=f"metrics port {port}"):
            app.start(config, Store({}, {}, {}, {}), kube=FakeKube())  # type: ignore[arg-type]


def test_a_failed_startup_frees_the_metrics_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kopf retries a startup that raised: the retry must find the metrics port free.
    use_kubeconfig(monkeypatch, tmp_path / "missing")
    config = OperatorConfig(metrics_port=free_port(), workers=1)
    with pytest.raises(ConfigException):
        app.start(config, Store({}, {}, {}, {}))

    async def retry() -> None:
        rt = app.start(config, Store({}, {}, {}, {}), kube=FakeKube())  # type: ignore[arg-type]
        await rt.stop()

    asyncio.run(retry())


def test_settings_pin_kopf_under_our_prefix() -> None:
    settings = kopf.OperatorSettings()
    operator_settings.apply(settings)
    progress = settings.persistence.progress_storage
    assert isinstance(progress, kopf.AnnotationsProgressStorage)
    assert progress.prefix == "kopf.elastrain.dev"
    assert settings.posting.level == logging.WARNING
    assert isinstance(settings.persistence.diffbase_storage, operator_settings.NoDiffBaseStorage)


def test_no_handler_needs_a_diff_base() -> None:
    """The settings keep no diff-base (kopf would deep-copy every object on every event for
    it). A change or daemon handler would then see no diff and run on every event: there must
    be none, only events, indexes and activities."""
    registry = handlers.registry
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()
    assert registry._watching.get_all_handlers() and registry._indexing.get_all_handlers()
