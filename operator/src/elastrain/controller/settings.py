"""kopf settings, set explicitly so nothing depends on kopf's defaults.

The reconcile is driven by event handlers and indexes only, so kopf never needs to patch a
TrainingJob: no progress, no diff-base, no finalizer, nothing in ``status``. The progress
storage is still pinned under our prefix so that nothing can silently start writing
``kopf.zalando.org/*`` annotations or ``status.kopf``, which the typed CRD would prune.

The diff-base storage builds nothing: kopf otherwise deep-copies every watched object into an
"essence" on every event (a tenth of the operator's CPU in ``make bench``) for change and
daemon handlers only, and Elastrain has neither. ``tests/controller`` holds the registry to
that: a change or daemon handler would get no diff and run on every event.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import kopf

from elastrain.api.constants import FINALIZER, KOPF_PREFIX, LABEL_JOB_NAME
from elastrain.api.kinds import CHILD_KINDS


class NoDiffBaseStorage(kopf.DiffBaseStorage):
    """A diff-base storage that keeps nothing: every object's essence is empty, none stored."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def apply(settings: kopf.OperatorSettings, peering_lifetime: int = 60) -> None:
    """Configure ``settings`` in the startup handler, before any watch starts.

    Peering (standalone or named, cluster-wide or namespaced) is set by ``kopf.run``'s arguments;
    its record's lifetime here (kopf renews the record from these settings).
    """
    settings.peering.lifetime = peering_lifetime
    p = settings.persistence
    p.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    p.diffbase_storage = NoDiffBaseStorage()
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
