"""The kopf handlers: indexes of jobs and children, and event handlers that enqueue job keys.

kopf is used for what it does well (login, watches with bookmarks and re-lists, indexes that
are complete before any handler runs, liveness, peering); the reconcile itself runs in our own
workers (:mod:`elastrain.controller.workers`) so that events for one job are coalesced and a
job is never reconciled twice at once. No handler here writes to the API.

Each handler is a plain module-level function registered on :data:`registry`, so a test calls
it directly. Their dependencies come from one place: the :class:`~elastrain.controller.app.Runtime`
that the startup handler builds and stores in kopf's ``memo`` (``kopf.run(memo=...)`` carries the
configuration in; kopf copies the memo into every object's handlers after startup has run).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from elastrain.api.constants import LABEL_JOB_NAME
from elastrain.api.kinds import CHILD_KINDS, POD_GROUP, TRAINING_JOB, Kind
from elastrain.controller import app
from elastrain.controller import settings as operator_settings
from elastrain.controller.config import OperatorConfig
from elastrain.controller.store import JobKey, Store, owner_job_key, slim

log = logging.getLogger(__name__)

registry = kopf.OperatorRegistry()

# kopf passes every index to every handler as a keyword argument named by the index's id.
JOBS_INDEX = "elastrain_jobs"


def child_index_id(kind: Kind) -> str:
    """``elastrain_pods`` and the like: the id (and keyword) of a child kind's index."""
    return f"elastrain_{kind.plural}"


def memo_for(config: OperatorConfig) -> kopf.Memo:
    """The memo to pass to ``kopf.run``: the configuration, for the startup handler."""
    return kopf.Memo(config=config)


def runtime(memo: Any) -> app.Runtime:
    """The run's :class:`~elastrain.controller.app.Runtime`, put in ``memo`` at startup."""
    found = memo.get("runtime") if isinstance(memo, dict) else None
    if not isinstance(found, app.Runtime):
        raise RuntimeError("the operator's startup handler has not run")
    return found


@kopf.on.login(id="login", registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account first, then ``KUBECONFIG`` (kopf's own loaders)."""
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(
        **kwargs
    ) or kopf.login_with_kubeconfig(**kwargs)
    return info


@kopf.on.startup(id="startup", registry=registry)
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """Pin kopf's settings, then build the run's Runtime over the (already complete) indexes."""
    operator_settings.apply(settings, peering_lifetime=memo.config.peering_lifetime)
    store = Store(
        kwargs[JOBS_INDEX],
        *(kwargs[child_index_id(kind)] for kind in CHILD_KINDS),
    )
    memo.runtime = app.start(memo.config, store)


@kopf.on.cleanup(id="cleanup", registry=registry)
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stop the workers, the metrics server and the API client."""
    if "runtime" in memo:
        await runtime(memo).stop()


@kopf.index(*TRAINING_JOB.selector, id=JOBS_INDEX, registry=registry)
async def elastrain_jobs(body: kopf.Body, **_: Any) -> dict[JobKey, Any]:
    """Every job, by ``(namespace, name)``."""
    return {(body.metadata.namespace or "", body.metadata.name or ""): slim(body)}


# Handlers are async: kopf runs sync ones in threads, and the queue belongs to the loop.
@kopf.on.event(*TRAINING_JOB.selector, id="enqueue-trainingjobs", registry=registry)
async def job_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Any change of a job: tick off our status write, update the phase gauge, enqueue it."""
    rt = runtime(memo)
    key = (body.metadata.namespace or "", body.metadata.name or "")
    if event.get("type") is None:  # replayed from a (re-)listing: deletions may have been missed
        rt.sweeper.listed(TRAINING_JOB.kind)
    if event.get("type") == "DELETED":
        rt.metrics.set_job_phase(key, None)
        rt.expectations.forget(key)
    else:
        rt.expectations.observe_job(
            key,
            body.meta.get("resourceVersion"),
            terminating=bool(body.meta.get("deletionTimestamp")),
        )
        rt.metrics.set_job_phase(key, (body.get("status") or {}).get("phase") or "New")
    rt.queue.add(key)


def is_child(body: kopf.Body, **_: Any) -> bool:
    """kopf's ``when`` filter: only objects that a job owns (``elastrain.api.ownership``)."""
    return owner_job_key(body) is not None


async def child_index(body: kopf.Body, **_: Any) -> dict[JobKey | None, Any]:
    """Every child of every job, by its job's key."""
    return {owner_job_key(body): slim(body)}


async def child_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Any change of a child: tick off our create or delete of it, enqueue its job."""
    key = owner_job_key(body)
    if key is not None:
        rt = runtime(memo)
        if event.get("type") is None:  # a (re-)listing (``elastrain.controller.relist``)
            rt.sweeper.listed(str(body.get("kind")))
        deleted = event.get("type") == "DELETED"
        rt.expectations.observe_child(key, str(body.get("kind")), dict(body), deleted)
        rt.queue.add(key)


# The label is also a server-side selector on these watches (``settings.apply``).
_CHILD_OPTIONS: dict[str, Any] = {
    "labels": {LABEL_JOB_NAME: kopf.PRESENT},
    "when": is_child,
    "registry": registry,
}
for _kind in CHILD_KINDS:
    _index = kopf.index(*_kind.selector, id=child_index_id(_kind), **_CHILD_OPTIONS)
    _index(child_index)
    _watch = kopf.on.event(*_kind.selector, id=f"enqueue-{_kind.plural}", **_CHILD_OPTIONS)
    _watch(child_event)


# How long after a PodGroup CRD event the operator keeps asking discovery whether it is served.
CRD_SERVED_WAIT = 30.0


def is_pod_group_crd(name: str | None, **_: Any) -> bool:
    """kopf's ``when`` filter: only the PodGroup CustomResourceDefinition."""
    return name == POD_GROUP.crd_name


@kopf.on.event(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    id="podgroup-crd",
    when=is_pod_group_crd,
    registry=registry,
)
async def podgroup_crd(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """The PodGroup CRD appeared, changed or went: re-check it and re-plan every job, so that
    gang jobs waiting for it start within seconds instead of at their next 60 s requeue.

    A CRD that exists but is not served yet (discovery lags it on a real API server) is asked
    after again for up to :data:`CRD_SERVED_WAIT` seconds, and every job re-planned once it is.
    """
    rt = runtime(memo)
    rt.pod_groups.invalidate()
    for key in rt.store.job_keys():
        rt.queue.add(key)
    if event.get("type") == "DELETED" or await rt.pod_groups.served():
        return
    if await rt.pod_groups.wait_until_served(CRD_SERVED_WAIT):
        for key in rt.store.job_keys():
            rt.queue.add(key)
