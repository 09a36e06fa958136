"""A fake of :class:`elastrain.kube.client.Kube` at its one seam, ``request``.

Everything the controller sends goes through ``Kube.request(method, path, body=...)``, and every
failure comes back as an :mod:`elastrain.kube.errors` class built from the HTTP status and the
server's Status body. The fake records each request in order and answers like an API server
would, so the real resources/events/discovery code, the real Reconciler and the real workers run
on top of it; :meth:`FakeKube.fail` makes chosen requests fail with a chosen HTTP status.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from elastrain.kube import errors
from elastrain.kube.client import JSON

# The Status reason the API server sends with each code (409 depends on the verb).
_REASONS = {
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    403: "Forbidden",
    429: "TooManyRequests",
    500: "InternalError",
}


@dataclass(frozen=True)
class Request:
    """One request as the client sent it."""

    method: str
    path: str
    body: Any
    content_type: str

    @property
    def resource(self) -> str:
        """The path's resource, with ``/status`` for the subresource: ``pods``, ``events``..."""
        parts = self.path.split("/")
        if "namespaces" not in parts:
            return "discovery"
        after = parts[parts.index("namespaces") + 2 :]
        return "trainingjobs/status" if after[-1:] == ["status"] else after[0]

    @property
    def name(self) -> str | None:
        """The object's name: from the path, or from the body of a create."""
        parts = self.path.split("/")
        if "namespaces" not in parts:
            return None
        after = parts[parts.index("namespaces") + 2 :]
        if len(after) > 1:
            return after[1]
        return ((self.body or {}).get("metadata") or {}).get("name")

    def short(self) -> str:
        """``"POST pods job-worker-0"``: enough to assert the order of a plan's writes."""
        return f"{self.method} {self.resource} {self.name}"


@dataclass
class _Rule:
    matches: Callable[[Request], bool]
    status: int
    reason: str
    times: int | None  # None: every matching request
    raise_instead: BaseException | None = None


@dataclass
class FakeKube:
    """Records requests; answers 2xx unless a :meth:`fail` rule matches."""

    requests: list[Request] = field(default_factory=list)
    # Discovery: group/version path -> the plurals it serves (absent: 404).
    served: dict[str, list[str]] = field(default_factory=dict)
    _rules: list[_Rule] = field(default_factory=list)
    closed: bool = False

    def fail(
        self,
        method: str,
        resource: str,
        status: int,
        *,
        name: str | None = None,
        reason: str | None = None,
        times: int | None = None,
    ) -> None:
        """Answer matching requests with HTTP ``status`` (``times`` of them, or all)."""

        def matches(r: Request) -> bool:
            return (
                r.method == method and r.resource == resource and (name is None or r.name == name)
            )

        self._rules.append(_Rule(matches, status, reason or _REASONS.get(status, "Unknown"), times))

    def crash(self, method: str, resource: str, exc: BaseException) -> None:
        """Raise ``exc`` itself (not an API error) for matching requests: a bug below us."""
        self._rules.append(
            _Rule(lambda r: r.method == method and r.resource == resource, 0, "", None, exc)
        )

    def heal(self) -> None:
        """Forget every failure rule."""
        self._rules.clear()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = JSON,
    ) -> Any:
        request = Request(method, path, body, content_type)
        self.requests.append(request)
        # Decided on arrival, as a server would: a rule healed meanwhile does not save it.
        rule = next((r for r in self._rules if r.matches(request) and r.times != 0), None)
        if rule is not None and rule.times is not None:
            rule.times -= 1
        await asyncio.sleep(0)  # a real request yields to the loop: let gathered calls interleave
        if rule is not None:
            if rule.raise_instead is not None:
                raise rule.raise_instead
            status_body = {"kind": "Status", "reason": rule.reason, "message": "told to fail"}
            raise errors.from_response(rule.status, json.dumps(status_body))
        if request.resource == "discovery":
            if path not in self.served:
                raise errors.from_response(404, None)
            return {"resources": [{"name": plural} for plural in self.served[path]]}
        if method == "POST":
            return body
        if method == "PATCH" and request.resource == "trainingjobs/status":
            return {"status": body["status"]}
        return {}

    def close(self) -> None:
        self.closed = True

    # Views for assertions.

    def log(self) -> list[str]:
        """Every request, in order, as :meth:`Request.short`."""
        return [r.short() for r in self.requests]

    def events(self) -> list[dict[str, Any]]:
        """The bodies of the Events created, in order."""
        return [r.body for r in self.requests if r.method == "POST" and r.resource == "events"]
