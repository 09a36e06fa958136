"""Kubernetes ``Status`` errors, raised anywhere in the sandbox and rendered by the server.

One exception type carries everything a real API server puts in a failure ``Status`` body
(code, reason, message, details with causes), so the store, admission and the HTTP layer can
raise the exact error kubectl and client libraries parse, and the server turns it into JSON in
one place. Nothing else is ever allowed to escape a request handler as a 500 without a body.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An API failure with the ``Status`` body the real API server would send."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self._body = body

    def status(self) -> dict[str, Any]:
        """The ``Status`` object for the response body."""
        if self._body is not None:
            return self._body
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            out["details"] = self.details
        return out


def _details(kind: str | None, group: str, name: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if name:
        out["name"] = name
    if group:
        out["group"] = group
    if kind:
        out["kind"] = kind
    return out


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def _object_error(
    code: int, reason: str, plural: str, group: str, name: str, prefix: str, suffix: str
) -> ApiError:
    """An error about one object, worded ``<prefix><plural>[.<group>] "<name>"<suffix>``
    with details naming the object, as every such Status from the API server is."""
    message = f'{prefix}{_qualified(plural, group)} "{name}"{suffix}'
    return ApiError(code, reason, message, details=_details(plural, group, name))


def not_found(plural: str, group: str, name: str) -> ApiError:
    """404 as ``<plural>[.<group>] "<name>" not found``."""
    return _object_error(404, "NotFound", plural, group, name, "", " not found")


def already_exists(plural: str, group: str, name: str) -> ApiError:
    """409 AlreadyExists for a duplicate create."""
    return _object_error(409, "AlreadyExists", plural, group, name, "", " already exists")


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    """409 Conflict: a stale resourceVersion or a failed precondition."""
    prefix = "Operation cannot be fulfilled on "
    return _object_error(409, "Conflict", plural, group, name, prefix, f": {why}")


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, "BadRequest", message)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    """405 MethodNotAllowed."""
    return ApiError(405, "MethodNotAllowed", message, details={})


def unsupported_media_type(content_type: str) -> ApiError:
    """415 for a patch or body type this resource does not accept."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        f"application/json-patch+json, application/merge-patch+json (got {content_type})",
    )


def gone(message: str) -> ApiError:
    """410 Expired: the requested resourceVersion or continue token is compacted away."""
    return ApiError(410, "Expired", message)


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid with field causes ``(reason, field, message)`` like the API server's."""
    details = _details(kind, group, name)
    details["causes"] = [{"reason": r, "message": m, "field": f} for r, f, m in causes]
    parts = [f"{f}: {m}" if f else m for _r, f, m in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    display = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        "Invalid",
        f'{display} "{name}" is invalid: {summary}',
        details=details,
    )


def forbidden(plural: str, group: str, name: str, why: str) -> ApiError:
    """403 Forbidden, used for writes into a terminating namespace."""
    return _object_error(403, "Forbidden", plural, group, name, "", f" is forbidden: {why}")
