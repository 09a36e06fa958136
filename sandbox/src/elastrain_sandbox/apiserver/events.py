"""Recording core/v1 Events the way client-go's event recorder does (with aggregation).

An identical event (same object, type, reason and message) within the series bumps ``count``
and ``lastTimestamp`` on the existing Event instead of creating a new one, so a pod retried by
the scheduler does not flood the namespace.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from elastrain_sandbox.apiserver.errors import ApiError
from elastrain_sandbox.apiserver.meta import timestamp
from elastrain_sandbox.apiserver.store import Store

log = logging.getLogger(__name__)


class EventRecorder:
    def __init__(self, store: Store, component: str, host: str = "") -> None:
        self._store = store
        self._component = component
        self._host = host
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str, str], str] = {}

    def record(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        md = obj["metadata"]
        ns = md.get("namespace") or "default"
        key = (md.get("uid", ""), type_, reason, message)
        now = timestamp()
        with self._lock:
            existing = self._seen.get(key)
        if existing is not None:
            try:
                ev = self._store.get("events", existing, ns)
                self._store.patch(
                    "events",
                    existing,
                    {"count": int(ev.get("count", 1)) + 1, "lastTimestamp": now},
                    namespace=ns,
                )
                return
            except ApiError:
                pass  # expired or deleted: record a fresh one
        name = f"{md['name']}.{time.time_ns():x}"
        event = {
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "kind": obj.get("kind", ""),
                "namespace": md.get("namespace", ""),
                "name": md["name"],
                "uid": md.get("uid", ""),
                "apiVersion": obj.get("apiVersion", ""),
                "resourceVersion": md.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "source": {
                "component": self._component,
                **({"host": self._host} if self._host else {}),
            },
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": self._component,
            "reportingInstance": self._host or self._component,
        }
        try:
            self._store.create("events", event, ns)
        except ApiError as err:  # a namespace being deleted: events are best effort
            log.debug("event %s/%s not recorded: %s", ns, reason, err.message)
            return
        with self._lock:
            self._seen[key] = name
