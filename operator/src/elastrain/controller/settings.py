"""kopf settings, set explicitly so nothing depends on kopf's defaults.

The reconcile is driven by event handlers and indexes only, so kopf never needs to patch a
TrainingJob: no progress, no diff-base, no finalizer, nothing in ``status``. The storages are
still pinned under our prefix so that a future change-detection handler cannot silently start
writing ``kopf.zalando.org/*`` annotations or ``status.kopf``, which the typed CRD would prune.
"""

from __future__ import annotations

import logging

import kopf

from elastrain.api.constants import FINALIZER, KOPF_PREFIX, LABEL_JOB_NAME
from elastrain.api.kinds import CHILD_KINDS


def apply(settings: kopf.OperatorSettings) -> None:
    """Configure ``settings`` in the startup handler, before any watch starts.

    Peering (standalone or named, cluster-wide or namespaced) is set by ``kopf.run``'s arguments.
    """
    p = settings.persistence
    p.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    p.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    p.finalizer = FINALIZER

    w = settings.watching
    # Re-list every 5 minutes at most; the client timeout a little later so the server ends it.
    w.server_timeout = 300
    w.client_timeout = 310
    w.connect_timeout = 10
    # Bookmarks arrive every ~60 s: 70 s of silence means a dead stream, reconnect.
    w.inactivity_timeout = 70
    # Only our children: the server filters, so pods of other workloads never reach us.
    for kind in CHILD_KINDS:
        w.label_selectors[kind.selector] = LABEL_JOB_NAME

    settings.networking.connect_timeout = 10
    settings.networking.request_timeout = 60

    # kopf's own events for its handler failures only; ours are posted by elastrain.kube.events.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "elastrain-operator"
    # Our handlers are async; the pool only serves kopf's sync helpers.
    settings.execution.max_workers = 2
