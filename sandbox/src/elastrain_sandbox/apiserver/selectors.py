"""Label and field selectors, parsed once per request and matched against stored objects.

The grammar is the API server's: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``,
``a``, ``!a`` for labels; ``path=value``/``path==value``/``path!=value`` for the fields each
resource supports. ``LabelSelector.index_terms`` exposes the equality terms so the store can
answer from its label index instead of scanning every object of a resource.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from elastrain_sandbox.apiserver.errors import bad_request

_KEY = r"[A-Za-z0-9_./-]+"
_VALUE = r"[A-Za-z0-9_.-]*"
_SET_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*$")


@dataclass(frozen=True)
class Requirement:
    """One label requirement: ``op`` is one of =, !=, in, notin, exists, !exists."""

    key: str
    op: str
    values: frozenset[str]

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # != and notin match objects without the key, as Kubernetes does.
        return not present or labels[self.key] not in self.values


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector; empty matches everything."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if not text:
            return cls()
        reqs: list[Requirement] = []
        for part in _split_top(text):
            m = _EQ_RE.match(part)
            if m:
                op = "!=" if m.group(2) == "!=" else "="
                reqs.append(Requirement(m.group(1), op, frozenset([m.group(3)])))
                continue
            m = _SET_RE.match(part)
            if not m:
                raise bad_request(f"unable to parse requirement: {part.strip()!r}")
            neg, key, op, vals = m.groups()
            if op:
                if neg:
                    raise bad_request(f"unable to parse requirement: {part.strip()!r}")
                values = frozenset(v.strip() for v in vals.split(",") if v.strip())
                reqs.append(Requirement(key, op, values))
            else:
                reqs.append(Requirement(key, "!exists" if neg else "exists", frozenset()))
        return cls(tuple(reqs))

    @classmethod
    def from_match(cls, selector: dict[str, Any]) -> LabelSelector:
        """From a ``metav1.LabelSelector`` (matchLabels + matchExpressions)."""
        reqs = [
            Requirement(k, "=", frozenset([str(v)]))
            for k, v in (selector.get("matchLabels") or {}).items()
        ]
        ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
        for expr in selector.get("matchExpressions") or []:
            op = ops.get(expr.get("operator", ""))
            if op is None:
                raise bad_request(f"invalid label selector operator {expr.get('operator')!r}")
            reqs.append(Requirement(expr["key"], op, frozenset(expr.get("values") or [])))
        return cls(tuple(reqs))

    def matches(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def index_terms(self) -> list[tuple[str, str]]:
        """Equality terms (single value ``=``/``in``) the store can look up in its index."""
        return [
            (r.key, next(iter(r.values)))
            for r in self.requirements
            if r.op in ("=", "in") and len(r.values) == 1
        ]

    def __str__(self) -> str:
        out = []
        for r in self.requirements:
            if r.op in ("exists",):
                out.append(r.key)
            elif r.op == "!exists":
                out.append("!" + r.key)
            elif r.op in ("=", "!="):
                out.append(f"{r.key}{r.op}{next(iter(r.values))}")
            else:
                out.append(f"{r.key} {r.op} ({','.join(sorted(r.values))})")
        return ",".join(out)


# Fields each kind may be selected on, beyond metadata.name/metadata.namespace.
_FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Event": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
        # events.k8s.io/v1 spellings
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
    ),
    "Node": ("spec.unschedulable",),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
}


def _field_value(obj: dict[str, Any], path: str) -> str:
    if path == "source":
        return str((obj.get("source") or {}).get("component", ""))
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


@dataclass(frozen=True)
class FieldSelector:
    """A parsed field selector: ``(path, op, value)`` terms, ANDed."""

    terms: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def parse(cls, text: str | None, kind: str) -> FieldSelector:
        if not text:
            return cls()
        allowed = ("metadata.name", "metadata.namespace", *_FIELDS.get(kind, ()))
        terms: list[tuple[str, str, str]] = []
        for part in _split_top(text):
            m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
            if not m:
                raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
            path, op, value = m.groups()
            if path not in allowed:
                raise bad_request(f"field label not supported: {path}")
            terms.append((path, "!=" if op == "!=" else "=", value))
        return cls(tuple(terms))

    def value_for(self, path: str) -> str | None:
        """The value of an equality term on ``path`` (used to narrow by name/namespace)."""
        for p, op, v in self.terms:
            if p == path and op == "=":
                return v
        return None

    def matches(self, obj: dict[str, Any]) -> bool:
        for path, op, value in self.terms:
            actual = _field_value(obj, path)
            if (actual == value) != (op == "="):
                return False
        return True
