"""Small helpers for object metadata shared by the store, admission and controllers."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime
from typing import Any

_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's generateName alphabet
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def now() -> datetime:
    return datetime.now(UTC)


def timestamp(when: datetime | None = None) -> str:
    """RFC 3339 with second precision and ``Z``, as ``metav1.Time`` serialises."""
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_timestamp(when: datetime | None = None) -> str:
    """``metav1.MicroTime`` (events.k8s.io eventTime, leases)."""
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def generate_name(prefix: str) -> str:
    return prefix + "".join(random.choice(_GEN_ALPHABET) for _ in range(5))


def clone(obj: Any) -> Any:
    """A deep copy of a JSON value (faster than ``copy.deepcopy`` on API objects)."""
    return json.loads(json.dumps(obj))


# apimachinery's TotalAnnotationSizeLimitB: keys and values of one object together.
ANNOTATIONS_MAX_BYTES = 256 * 1024


def annotation_size_errors(annotations: object) -> list[str]:
    """kube-apiserver's limit on an object's annotations (ValidateAnnotations), for every kind."""
    if not isinstance(annotations, dict):
        return []
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > ANNOTATIONS_MAX_BYTES:
        return [f"Too long: must have at most {ANNOTATIONS_MAX_BYTES} bytes"]
    return []


def dns_subdomain_errors(name: str) -> list[str]:
    if len(name) > 253:
        return ["must be no more than 253 characters"]
    if not DNS_SUBDOMAIN.match(name):
        return [
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            "'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ]
    return []


def dns_label_errors(name: str) -> list[str]:
    if len(name) > 63:
        return ["must be no more than 63 characters"]
    if not DNS_LABEL.match(name):
        return [
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
            "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        ]
    return []


def owner_uids(obj: dict[str, Any]) -> list[str]:
    return [r["uid"] for r in obj.get("metadata", {}).get("ownerReferences") or [] if "uid" in r]


def set_condition(status: dict[str, Any], cond: dict[str, Any]) -> bool:
    """Insert or replace the condition of ``cond['type']``; True when something changed.

    ``lastTransitionTime`` only moves when ``status`` flips, as controllers do.
    """
    conds = status.setdefault("conditions", [])
    for i, old in enumerate(conds):
        if old.get("type") == cond["type"]:
            same = all(old.get(k) == v for k, v in cond.items() if k != "lastTransitionTime")
            if same:
                return False
            if old.get("status") == cond.get("status") and "lastTransitionTime" in old:
                cond = {**cond, "lastTransitionTime": old["lastTransitionTime"]}
            conds[i] = cond
            return True
    conds.append(cond)
    return True
