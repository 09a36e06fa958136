"""The kopf handlers: indexes of jobs and children, and event handlers that enqueue job keys.

kopf is used for what it does well (login, watches with bookmarks and re-lists, indexes that
are complete before any handler runs, liveness, peering); the reconcile itself runs in our own
workers (:mod:`elastrain.controller.controller`) so that events for one job are coalesced and a
job is never reconciled twice at once. No handler here writes to the API.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import kopf

from elastrain.api.constants import GROUP, LABEL_JOB_NAME, PLURAL, VERSION
from elastrain.controller import settings as operator_settings
from elastrain.controller.config import OperatorConfig
from elastrain.controller.controller import Controller
from elastrain.controller.expectations import Expectations
from elastrain.controller.queue import WorkQueue
from elastrain.controller.reconcile import CrdProbe, Planner, Reconciler
from elastrain.controller.store import JobKey, Store, owner_job_key, slim
from elastrain.kube import resources
from elastrain.kube.client import Kube
from elastrain.kube.events import EventRecorder
from elastrain.metrics.registry import Metrics

log = logging.getLogger(__name__)

_CHILD_LABELS = {LABEL_JOB_NAME: kopf.PRESENT}


def _is_child(body: kopf.Body, **_: Any) -> bool:
    return owner_job_key(body) is not None


class Runtime:
    """What lives for one operator run; built in the startup handler, torn down in cleanup."""

    def __init__(self, config: OperatorConfig, planner: Planner) -> None:
        self.config = config
        self.planner = planner
        self.metrics = Metrics()
        self.queue: WorkQueue[JobKey] = WorkQueue(on_depth=self.metrics.workqueue_depth.set)
        self.expectations = Expectations()
        self.kube: Kube | None = None
        self.store: Store | None = None
        self.probe: CrdProbe | None = None
        self.controller: Controller | None = None
        self._metrics_server: Any = None

    def start(self, store: Store) -> None:
        """Serve metrics, then start the workers; a port in use stops the operator."""
        if self.config.metrics_port:
            try:
                self._metrics_server = self.metrics.serve(self.config.metrics_port)
            except OSError as exc:
                # kopf would retry a failing startup forever; a taken port will not free itself.
                raise kopf.PermanentError(
                    f"metrics port {self.config.metrics_port}: {exc}"
                ) from exc
            log.info("metrics on :%d/metrics", self.config.metrics_port)
        self.kube = Kube.from_environment(self.config.kube_qps, self.config.kube_burst)
        self.store = store
        self.probe = CrdProbe(self.kube)
        recorder = EventRecorder(self.kube, host=socket.gethostname())
        reconciler = Reconciler(
            self.kube,
            store,
            recorder,
            self.metrics,
            self.planner,
            self.probe,
            self.expectations,
        )
        self.controller = Controller(
            self.queue, reconciler, recorder, self.metrics, self.config.workers
        )
        self.controller.start()

    async def stop(self) -> None:
        if self.controller is not None:
            await self.controller.stop()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        if self.kube is not None:
            self.kube.close()


def build_registry(runtime: Runtime) -> kopf.OperatorRegistry:
    """A registry with every handler of the operator, bound to ``runtime``."""
    registry = kopf.OperatorRegistry()
    job_resource = (GROUP, VERSION, PLURAL)

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In-cluster service account first, then ``KUBECONFIG`` (kopf's own loaders)."""
        info: kopf.ConnectionInfo | None = kopf.login_with_service_account(
            **kwargs
        ) or kopf.login_with_kubeconfig(**kwargs)
        return info

    @kopf.on.startup(id="startup", registry=registry)
    async def startup(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        # kopf passes every index to every handler by its handler id (the function name).
        operator_settings.apply(settings)
        indexes = [kwargs[f"elastrain_{n}"] for n in ("jobs", "pods", "services", "podgroups")]
        runtime.start(Store(*indexes))

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(**_: Any) -> None:
        await runtime.stop()

    @kopf.index(*job_resource, id="elastrain_jobs", registry=registry)
    async def elastrain_jobs(body: kopf.Body, **_: Any) -> dict[JobKey, Any]:
        return {(body.metadata.namespace or "", body.metadata.name or ""): slim(body)}

    @kopf.on.event(*job_resource, id="enqueue-trainingjobs", registry=registry)
    # Handlers are async: kopf runs sync ones in threads, and the queue belongs to the loop.
    async def job_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        key = (body.metadata.namespace or "", body.metadata.name or "")
        if event.get("type") == "DELETED":
            runtime.metrics.set_job_phase(key, None)
            runtime.expectations.forget(key)
        else:
            runtime.expectations.observe_job(key, body.meta.get("resourceVersion"))
            runtime.metrics.set_job_phase(key, (body.get("status") or {}).get("phase") or "New")
        runtime.queue.add(key)

    async def child_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        key = owner_job_key(body)
        if key is not None:
            deleted = event.get("type") == "DELETED"
            runtime.expectations.observe_child(key, str(body.get("kind")), dict(body), deleted)
            runtime.queue.add(key)

    @kopf.on.event(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        id="podgroup-crd",
        when=lambda name, **_: name == f"{resources.PODGROUP_PLURAL}.{resources.PODGROUP_GROUP}",
        registry=registry,
    )
    async def podgroup_crd(**_: Any) -> None:
        """The PodGroup CRD appeared, changed or went: re-check it and re-plan every job, so that
        gang jobs waiting for it start within seconds instead of at their next 60 s requeue."""
        if runtime.probe is not None and runtime.store is not None:
            runtime.probe.invalidate()
            for key in runtime.store.job_keys():
                runtime.queue.add(key)

    async def child_index(body: kopf.Body, **_: Any) -> dict[JobKey | None, Any]:
        return {owner_job_key(body): slim(body)}

    for plural, resource in operator_settings.CHILD_RESOURCES.items():
        only_children: dict[str, Any] = {"labels": _CHILD_LABELS, "when": _is_child}
        kopf.index(*resource, id=f"elastrain_{plural}", registry=registry, **only_children)(
            child_index
        )
        kopf.on.event(*resource, id=f"enqueue-{plural}", registry=registry, **only_children)(
            child_event
        )
    return registry
