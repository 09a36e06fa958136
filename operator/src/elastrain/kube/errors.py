"""A small error hierarchy for Kubernetes API failures.

The handlers decide what to do from the *kind* of failure (a 404 on delete is success, a 409 on
the status write means "stale, recompute", a 422 will not fix itself by retrying), so every API
error is turned into one of these classes carrying the server's ``Status`` message instead of
leaking the client library's exceptions (whose class depends on the client version).
"""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """An API request failed; ``status`` is the HTTP code (0 when no response came back)."""

    retryable = False

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}" if status else message)


class NotFound(ApiError):
    """404: the object (or its whole resource type) does not exist."""


class Conflict(ApiError):
    """409 Conflict: a stale resourceVersion or a failed uid precondition."""


class AlreadyExists(Conflict):
    """409 AlreadyExists: a create found a namesake."""


class Invalid(ApiError):
    """400/422: the request itself is wrong; retrying the same request cannot help."""


class Forbidden(ApiError):
    """401/403: RBAC or authentication; an operator misconfiguration, not a job problem."""


class Transient(ApiError):
    """429, 5xx, timeouts and connection errors: worth retrying with back-off."""

    retryable = True


def _status_fields(body: bytes | str | None) -> tuple[str, str]:
    """``(reason, message)`` from a ``Status`` body, tolerating anything else."""
    if not body:
        return "", ""
    try:
        status: Any = json.loads(body)
    except ValueError:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return "", text[:500]
    if not isinstance(status, dict):
        return "", str(status)[:500]
    return str(status.get("reason") or ""), str(status.get("message") or "")


def from_response(status: int, body: bytes | str | None) -> ApiError:
    """Map an HTTP error response to the narrowest class of the hierarchy."""
    reason, message = _status_fields(body)
    message = message or f"HTTP {status}"
    if status == 404:
        return NotFound(status, reason or "NotFound", message)
    if status == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
        return cls(status, reason or "Conflict", message)
    if status in (400, 422):
        return Invalid(status, reason or "Invalid", message)
    if status in (401, 403):
        return Forbidden(status, reason or "Forbidden", message)
    if status == 429 or status >= 500:
        return Transient(status, reason or "Transient", message)
    return ApiError(status, reason or "Unknown", message)


def from_exception(exc: BaseException) -> ApiError:
    """A connection-level failure (no HTTP response) as a retryable error."""
    return Transient(0, type(exc).__name__, str(exc) or type(exc).__name__)
