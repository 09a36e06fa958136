"""core/v1 Events with client-side aggregation, the way kubectl describe expects them.

A crash-looping job would otherwise post the same Warning on every reconcile and fill etcd;
like client-go's recorder, a repeat of the same (object, type, reason, message) within the
cache's memory patches ``count`` and ``lastTimestamp`` of the first Event instead.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elastrain.api import timefmt
from elastrain.api.kinds import EVENT
from elastrain.kube import errors
from elastrain.kube.client import MERGE_PATCH, Kube

log = logging.getLogger(__name__)

COMPONENT = "elastrain-operator"


@dataclass(frozen=True)
class InvolvedObject:
    """The object an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str | None = None

    def as_dict(self) -> dict[str, Any]:
        ref = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }
        if self.uid:
            ref["uid"] = self.uid
        return ref


class EventRecorder:
    """Posts Events, aggregating repeats; failures are logged, not raised: Events are advisory."""

    def __init__(self, kube: Kube, *, cache_size: int = 4096, host: str | None = None) -> None:
        self._kube = kube
        self._cache_size = cache_size
        self._host = host
        # (involved, type, reason, message) -> (event name, count)
        self._seen: OrderedDict[tuple[InvolvedObject, str, str, str], tuple[str, int]] = (
            OrderedDict()
        )

    async def record(
        self,
        involved: InvolvedObject,
        type_: str,
        reason: str,
        message: str,
        now: datetime | None = None,
    ) -> None:
        """Post (or count again) one Event about ``involved``."""
        now = now or datetime.now(UTC)
        key = (involved, type_, reason, message)
        seen = self._seen.get(key)
        try:
            if seen is not None:
                name, count = seen
                if await self._bump(involved.namespace, name, count + 1, now):
                    self._remember(key, name, count + 1)
                    return
            name = await self._create(involved, type_, reason, message, now)
            self._remember(key, name, 1)
        except errors.ApiError as exc:
            log.warning(
                "could not post event %s on %s/%s: %s", reason, involved.kind, involved.name, exc
            )

    def _remember(self, key: tuple[InvolvedObject, str, str, str], name: str, count: int) -> None:
        self._seen[key] = (name, count)
        self._seen.move_to_end(key)
        while len(self._seen) > self._cache_size:
            self._seen.popitem(last=False)

    async def _bump(self, namespace: str, name: str, count: int, now: datetime) -> bool:
        """Patch the count of an existing Event; False when it expired (Events have a TTL)."""
        patch = {"count": count, "lastTimestamp": timefmt.fmt(now)}
        try:
            await self._kube.request(
                "PATCH",
                EVENT.object_path(namespace, name),
                body=patch,
                content_type=MERGE_PATCH,
            )
        except errors.NotFound:
            return False
        return True

    async def _create(
        self, involved: InvolvedObject, type_: str, reason: str, message: str, now: datetime
    ) -> str:
        # client-go names events <object>.<unique suffix>; a uuid fragment avoids collisions
        # between operator replicas without a clock-derived guess.
        name = f"{involved.name}.{uuid.uuid4().hex[:16]}"
        # core/v1 firstTimestamp/lastTimestamp are whole-second date-times, like the status's.
        stamp = timefmt.fmt(now)
        source: dict[str, str] = {"component": COMPONENT}
        if self._host:
            source["host"] = self._host
        body = {
            "apiVersion": EVENT.api_version,
            "kind": EVENT.kind,
            "metadata": {"name": name, "namespace": involved.namespace},
            "involvedObject": involved.as_dict(),
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": source,
            "reportingComponent": COMPONENT,
            "reportingInstance": self._host or COMPONENT,
        }
        await self._kube.request("POST", EVENT.collection_path(involved.namespace), body=body)
        return name
